"""install.sh's file steps: everything that reads or edits a file of
Asterisk, ODBC or the allowlist, and the --check and --uninstall modes.

Stdlib only, so that the system's `python3 -I` runs it from the source tree
before the venv exists, or when it is broken. One concern per module:

    facts      the paths and names the installer works with
    files      symlink-safe reads and writes of files the asterisk user could plant
    ini        a line-preserving INI editor
    asterisk   `asterisk -rx` and the parsers of its answers
    places     where things are: agi-bin, the #include file, the manager account
    report     the one-line steps and the final line
    manifest   what --uninstall removes
    fastagi    the optional FastAGI server: its systemd unit and the dialplan's switch
    sqlite_as_owner  the allowlist's table made on a copy, run as the asterisk user
    steps, install, check, uninstall   the modes
    main       the command line install.sh calls
"""
