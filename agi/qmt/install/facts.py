"""The paths and names the installer works with, each said once.

Facts the package owns come from it (the config's path, the table's name,
the password masker); the rest are the installer's own. install.sh keeps
only PREFIX, the venv and the `qmt` link, which it needs before Python runs.
"""

from __future__ import annotations

import re

from ..allowlist import TABLE as TABLE
from ..config import CONFIG_PATH

PREFIX = "/opt/queue-mobile-toggle"
VENV = PREFIX + "/venv"
MANIFEST = PREFIX + "/install.manifest"
QMT_LINK = "/usr/local/sbin/qmt"                 # the admin command, on root's PATH
SHEBANG = f"#!{VENV}/bin/python3 -I"          # -I: the package from the venv only

AST_USER = "asterisk"
ASTETC = "/etc/asterisk"
CONFIG = CONFIG_PATH
CONFIG_EXAMPLE = "agi/queue_mobile_toggle.conf.example"
DIALPLAN = "extensions_queue_mobile_toggle.conf"
SCRIPT = "queue_mobile_toggle.py"
CONTEXT = "app-queue-toggle-mob"
INCLUDE_LINE = "#include " + DIALPLAN
INCLUDE_RE = re.compile(rf"^\s*#include\s+\"?{re.escape(DIALPLAN)}\"?\s*$")
EXTENSIONS = ASTETC + "/extensions.conf"
EXTENSIONS_CUSTOM = ASTETC + "/extensions_custom.conf"
ASTERISK_CONF = ASTETC + "/asterisk.conf"
STOCK_AGI_DIR = "/var/lib/asterisk/agi-bin"

# The allowlist: an ODBC DSN; by default a SQLite file made here.
# (To move: DEFAULT_DSN and DEFAULT_CONNECTION belong in qmt.config, whose
# Settings spells the default connection inline.)
DEFAULT_DSN = "queue_mobile_toggle"
DEFAULT_CONNECTION = "DSN=" + DEFAULT_DSN
SQLITE_DB = "/var/lib/asterisk/queue_mobile_toggle.sqlite"
SQLITE_MODE = 0o660
ODBC_INI = "/etc/odbc.ini"
DSN_DESCRIPTION = "queue-mobile-toggle allowlist (added by install.sh)"
ODBCINST_INI = "/etc/odbcinst.ini"               # where the ODBC drivers are registered
PG_DRIVER = "PostgreSQL Unicode"                 # psqlODBC's name there
BACKENDS = ("sqlite", "mariadb", "postgresql")

# The manager account of `qmt`. (To move: AMI_DEFAULT_PORT is qmt.config's
# fallback for [ami] port, spelled inline there.)
MANAGER_CONF = ASTETC + "/manager.conf"
MANAGER_CUSTOM = ASTETC + "/manager_custom.conf"
MANAGER_D_FILE = ASTETC + "/manager.d/queue_mobile_toggle.conf"
AMI_USER = "qmt"
AMI_DEFAULT_PORT = "5038"
AMI_OWN_FILE = "manager_queue_mobile_toggle.conf"  # where manager.conf includes nothing we can use
AMI_INCLUDE_LINE = "#include " + AMI_OWN_FILE

# qmt sweep --apply every 5 minutes. (To move: qmt.cli's doctor spells these
# two paths inline.)
SWEEP_CRON = "/etc/cron.d/queue-mobile-toggle"
SWEEP_UNITS = "/etc/systemd/system/qmt-sweep"     # .service and .timer
SWEEP_TIMER = "qmt-sweep.timer"
SWEEP_COMMAND = QMT_LINK + " sweep --apply"

# Files root reads, most of them the asterisk user's: every mode refuses an
# unsafe one (a link, a FIFO...) before any change, as it does those it writes.
READ_FILES = (ASTERISK_CONF, EXTENSIONS, EXTENSIONS_CUSTOM, MANAGER_CONF, CONFIG, MANIFEST, ODBC_INI, ODBCINST_INI)
