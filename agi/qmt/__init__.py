"""queue-mobile-toggle: permitted mobile numbers as dynamic queue agents.

One package for the AGI script Asterisk runs (agi/queue_mobile_toggle.py ->
qmt.toggle) and the admin command `qmt` (qmt.cli). Modules, one concern each:

    dialplan      the contract with the .conf: variable, context and astdb names, ring defaults
    rules         pure: numbers, names, rows, decisions (no I/O; imports only the contract)
    config        the INI file, validated; the one reader of every setting
    allowlist     the ODBC table, read within a time bound; admin writes
    pbx           Asterisk: the AGI channel (strict start block)
    ami           Asterisk's manager interface, for `qmt` (read-only view, removals)
    asterisk_cli  Asterisk's control socket (asterisk -rx): astdb, the dialplan
    decision      the decision a call would get: shared by the AGI and `qmt check`
    log           one line per decision, to syslog or a file
    toggle        one AGI call: ask, decide, answer the dialplan
    fastagi       `qmt serve`: the same calls over FastAGI, one process for all (optional)
    cli           the `qmt` command
    queue_log     Asterisk's queue_log (file, rotated copies, ODBC table) as a stream of entries
    report        `qmt report`: sessions, pauses and calls per number and queue, text/JSON/CSV
    report_html   `qmt report --html`: one self-contained page with inline SVG charts
    privileges    root's `qmt` becomes the asterisk user before it reads anything
    install       install.sh's file steps, --check and --uninstall (stdlib only; run
                  from the source tree, not installed in the venv)
"""

__version__ = "0.3.0"
