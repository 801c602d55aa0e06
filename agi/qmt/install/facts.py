"""The paths and names the installer works with, each said once.

Facts the package owns come from it (the config's path, the table's name,
the password masker); the rest are the installer's own. install.sh keeps
only PREFIX, the venv and the `qmt` link, which it needs before Python runs.
"""

from __future__ import annotations

import re

from ..allowlist import TABLE as TABLE
from ..config import CONFIG_PATH, DEFAULT_AMI_PORT
from ..config import DEFAULT_CONNECTION as DEFAULT_CONNECTION
from ..config import DEFAULT_DSN as DEFAULT_DSN
from ..config import DEFAULT_FASTAGI_PORT as DEFAULT_FASTAGI_PORT
from ..config import SWEEP_CRON as SWEEP_CRON
from ..config import SWEEP_UNITS as SWEEP_UNITS
from ..dialplan import AGI_SCRIPT, DIALPLAN_FILE, ENTRY_CONTEXT
from ..dialplan import FASTAGI_FAMILY as FASTAGI_FAMILY
from ..dialplan import FASTAGI_HOST as FASTAGI_HOST
from ..dialplan import FASTAGI_PORT_KEY as FASTAGI_PORT_KEY

PREFIX = "/opt/queue-mobile-toggle"
VENV = PREFIX + "/venv"
MANIFEST = PREFIX + "/install.manifest"
QMT_LINK = "/usr/local/sbin/qmt"                 # the admin command, on root's PATH
SHEBANG = f"#!{VENV}/bin/python3 -I"          # -I: the package from the venv only

AST_USER = "asterisk"
ASTETC = "/etc/asterisk"
CONFIG = CONFIG_PATH
CONFIG_EXAMPLE = "agi/queue_mobile_toggle.conf.example"
DIALPLAN = DIALPLAN_FILE
SCRIPT = AGI_SCRIPT
CONTEXT = ENTRY_CONTEXT
INCLUDE_LINE = "#include " + DIALPLAN
INCLUDE_RE = re.compile(rf"^\s*#include\s+\"?{re.escape(DIALPLAN)}\"?\s*$")
EXTENSIONS = ASTETC + "/extensions.conf"
EXTENSIONS_CUSTOM = ASTETC + "/extensions_custom.conf"
ASTERISK_CONF = ASTETC + "/asterisk.conf"
STOCK_AGI_DIR = "/var/lib/asterisk/agi-bin"

# The allowlist: an ODBC DSN (qmt.config's DEFAULT_DSN); by default a SQLite file made here.
SQLITE_DB = "/var/lib/asterisk/queue_mobile_toggle.sqlite"
SQLITE_MODE = 0o660
ODBC_INI = "/etc/odbc.ini"
DSN_DESCRIPTION = "queue-mobile-toggle allowlist (added by install.sh)"
ODBCINST_INI = "/etc/odbcinst.ini"               # where the ODBC drivers are registered
PG_DRIVER = "PostgreSQL Unicode"                 # psqlODBC's name there
BACKENDS = ("sqlite", "mariadb", "postgresql")

# The manager account of `qmt`.
MANAGER_CONF = ASTETC + "/manager.conf"
MANAGER_CUSTOM = ASTETC + "/manager_custom.conf"
MANAGER_D_FILE = ASTETC + "/manager.d/queue_mobile_toggle.conf"
AMI_USER = "qmt"
AMI_DEFAULT_PORT = DEFAULT_AMI_PORT
AMI_OWN_FILE = "manager_queue_mobile_toggle.conf"  # where manager.conf includes nothing we can use
AMI_INCLUDE_LINE = "#include " + AMI_OWN_FILE

# qmt sweep --apply every 5 minutes (the paths: qmt.config, which qmt doctor reads).
SWEEP_TIMER = "qmt-sweep.timer"
SWEEP_COMMAND = QMT_LINK + " sweep --apply"

# The optional FastAGI server (install.sh --fastagi): `qmt serve` as a systemd
# unit, named as the sweep's (qmt-sweep) and as the config's comment says.
FASTAGI_UNIT = "qmt-fastagi.service"
FASTAGI_UNIT_FILE = "/etc/systemd/system/" + FASTAGI_UNIT
QMT_SERVE = VENV + "/bin/qmt serve"

# Files root reads, most of them the asterisk user's: every mode refuses an
# unsafe one (a link, a FIFO...) before any change, as it does those it writes.
READ_FILES = (ASTERISK_CONF, EXTENSIONS, EXTENSIONS_CUSTOM, MANAGER_CONF, CONFIG, MANIFEST, ODBC_INI, ODBCINST_INI,
              FASTAGI_UNIT_FILE)
