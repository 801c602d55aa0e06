"""The dialplan contract: every name and default that the package and the
dialplan (agi/extensions_queue_mobile_toggle.conf) share, in one place.

Nothing links the two languages but these names. tests/test_dialplan_contract.py
reads the .conf and checks every name and default below against it, both
ways, so that neither side can drift. This module imports nothing: rules,
config, pbx, pin and cli read their names from it.
"""

DIALPLAN_FILE = "extensions_queue_mobile_toggle.conf"
AGI_SCRIPT = "queue_mobile_toggle.py"

# -- contexts ----------------------------------------------------------------
# Where the admin points an IVR option (s: every queue, <queue>: that one).
ENTRY_CONTEXT = "app-queue-toggle-mob"
# The ring path: the queue rings Local/<number>@qmt-ring/n, which dials the
# route and, on the mobile's leg, asks for a 1 in qmt-confirm.
RING_CONTEXT = "qmt-ring"
CONFIRM_CONTEXT = "qmt-confirm"
# Every context of the file, for the contract test and `qmt doctor`.
CONTEXTS = (ENTRY_CONTEXT, "qmt-toggle", "qmt-toggle-change", "qmt-ring-settings", "qmt-add-members",
            "qmt-undo-adds", "qmt-remove-members", "qmt-remove-one", "qmt-resume-members", "qmt-pause-members",
            RING_CONTEXT,
            "qmt-ring-callerid", "qmt-ring-leg", CONFIRM_CONTEXT, "qmt-confirm-watch", "qmt-ring-missed")

# The extension of ENTRY_CONTEXT for a break taken from the phone
# (app-queue-toggle-mob,pause,1), and the action it passes to the script
# (its third argument; empty: the toggle).
BREAK_EXTENSION, BREAK_ACTION = "pause", "break"

# The member interface of every login: the ring path of the number.
MEMBER_INTERFACE = "Local/{number}@" + RING_CONTEXT + "/n"

# -- the AGI script's answer: channel variables, in one EXEC MSet ------------
QUEUEUSER = "QUEUEUSER"                        # the normalised number ('' if refused)
QUEUESTAT = "QUEUESTAT"                        # one of QUEUESTAT_VALUES, sent last
QAGENT_UNAUTHORIZED = "QAGENT_UNAUTHORIZED"    # 1 when DENIED
QMT_REASON = "QMT_REASON"                      # why, as in the log line
QMT_INTERFACE = "QMT_INTERFACE"                # the member interface of a login
QMT_COUNT = "QMT_COUNT"                        # how many queues: i = 1..QMT_COUNT
# Per queue i (the name % i):
QMT_QUEUE, QMT_PENALTY, QMT_NAME, QMT_IFACE = "QMT_QUEUE_%d", "QMT_PENALTY_%d", "QMT_NAME_%d", "QMT_IFACE_%d"
# QUEUESTAT's values: the state before the call; the dialplan acts on it.
# WORKING: a member on duty who asked for a break (the break action only).
LOGGEDIN, LOGGEDOUT, PAUSED, DENIED, ERROR = "LOGGEDIN", "LOGGEDOUT", "PAUSED", "DENIED", "ERROR"
WORKING = "WORKING"
QUEUESTAT_VALUES = (LOGGEDIN, LOGGEDOUT, PAUSED, WORKING, DENIED, ERROR)

# -- the ring path's settings: sent with a login, kept in astdb --------------
# The dialplan stores each QMT_RING_* variable under qmt-ring/<number>/<key>
# at login; the ring path reads them there without running Python.
RING_FAMILY = "qmt-ring"
RING_SETTINGS = (                               # (variable, astdb key)
    ("QMT_RING_ROUTE", "route"),
    ("QMT_RING_SECONDS", "ring_seconds"),
    ("QMT_RING_CONFIRM", "confirm"),
    ("QMT_RING_ANSWER_WAIT", "answer_wait"),
    ("QMT_RING_PAUSE_AFTER", "pause_after"),
    ("QMT_RING_CALLERID", "callerid"),
    ("QMT_RING_ANNOUNCE", "announce"),
)
# The ring path's own state beside them: misses in a row, the customer call
# (linkedid) that last counted one, the last ring fault.
RING_STATE_KEYS = ("missed", "missed_call", "fault")
# The built-in defaults, used by the config for a key it does not set and by
# the dialplan for a key missing in astdb (a member logged in by a version
# before the key existed). Not what the admin configured: the same values.
RING_DEFAULTS = {"route": "outbound-allroutes", "ring_seconds": 20, "answer_wait": 5, "pause_after": 3}

# -- other shared names ------------------------------------------------------
PIN_FAMILY = "qmt-pin"                # astdb: qmt-pin/<number> = the PIN lockout record
LOCK_PREFIX = "qmt-toggle-"           # LOCK(qmt-toggle-<normalised number>): one toggle at a time
# PausedReason of the pauses the ring path makes, and of its resume.
PAUSE_MISSED, PAUSE_BREAK, RESUMED = "qmt-missed", "qmt-break", "qmt-resumed"
# queue_log events the dialplan writes (README, "The queue_log table").
QUEUE_LOG_EVENTS = ("QMTNOCONFIRM", "QMTREJECT", "QMTMISSED", "QMTRINGFAULT")

# -- FastAGI (optional): the same decision from `qmt serve` -------------------
# The admin's switch, in astdb: qmt-fastagi/port = the port on 127.0.0.1
# (install.sh --fastagi sets it, --no-fastagi and --uninstall delete it); no
# key, or anything but 1-5 digits, and the dialplan runs the classic script.
FASTAGI_FAMILY = "qmt-fastagi"
FASTAGI_PORT_KEY = "port"
FASTAGI_HOST = "127.0.0.1"
# The script name the server answers: agi://127.0.0.1:<port>/queue_mobile_toggle
FASTAGI_SCRIPT = "queue_mobile_toggle"
# Set by the first command of every call (both modes): empty after the
# FastAGI attempt, no command reached Asterisk and the classic script runs.
SERVED = "QMT_SERVED"
