"""Asterisk's test configuration: the .conf files in tests/e2e/pbx/,
written into a root's /etc/asterisk with their run-time values filled in.

The files are real Asterisk configuration that a person and asterisklint
can read (tests/lint_dialplan.py checks the dialplan). The few values known
only at run time (a free port, a random secret, a path the harness also
uses) are placeholders @NAME@, and only ever in a value, never in a section
or key name: the files keep their shape, and asterisklint sees a plain
word. render() fills them and refuses to leave one unfilled. The
FreePBX-shaped PBX (freepbx.py, freepbx_pbx/) uses the same convention.
"""

import re
from pathlib import Path

from harness.host import SetupError

PBX_DIR = Path(__file__).resolve().parents[1] / "pbx"      # tests/e2e/pbx
ETC = "/etc/asterisk"
PLACEHOLDER = re.compile(r"@[A-Z_]+@")

CALLS_DIR = "/var/tmp/qmt-calls"               # caller ID / target per call slot
AGI_DIR = "/var/lib/asterisk/agi-bin"          # astagidir of the test asterisk.conf
QUEUES = ("8008", "8010")               # the queues most tests log in to (queues.conf)
ALL_QUEUES = QUEUES + ("8012",)         # 8012: linear, for the ring path tests
BENCH_FLOOR_SCRIPT = "qmt_bench_floor.py"      # written by the benchmark only
SIP_ENDPOINT = "e2e-trunk"     # as pjsip.conf names it: the calling channel is PJSIP/e2e-trunk-<n>
MODULES_DIR = "/usr/lib/x86_64-linux-gnu/asterisk/modules"
# Owned root:asterisk, mode 0640: they hold a secret.
SECRET_FILES = ("manager.conf",)

# What a SIP call over UDP needs (INVITE, SDP with PCMU, caller ID from
# From, RDNIS from Diversion, endpoint found by source IP): the attack
# tests call in the way an outside caller would.
SIP_MODULES = ("chan_pjsip", "res_pjproject", "res_pjsip", "res_pjsip_session", "res_pjsip_pubsub",
               "res_pjsip_sdp_rtp", "res_rtp_asterisk", "res_pjsip_endpoint_identifier_ip",
               "res_pjsip_caller_id", "res_pjsip_diversion")
# Modules whose name starts so are not loaded, SIP_MODULES (and a caller's keep) aside.
UNNEEDED_MODULES = (
    "chan_", "res_pjsip", "res_pjproject", "res_hep", "res_ari", "res_stasis", "app_stasis",
    "res_http_websocket", "res_websocket", "res_calendar", "res_config_", "res_odbc", "func_odbc",
    "cdr_", "cel_", "res_xmpp", "res_snmp", "res_statsd", "res_prometheus", "res_phoneprov",
    "res_pjsip", "res_fax", "res_geolocation", "res_aeap", "res_speech_aeap", "res_stir_shaken",
    "res_resolver_unbound", "res_rtp_", "res_srtp", "res_smdi", "app_voicemail", "res_mwi",
    "app_minivm", "pbx_lua", "pbx_dundi", "pbx_realtime", "pbx_ael", "res_realtime",
    "res_sorcery_realtime", "app_jack", "app_festival", "res_http_media_cache", "res_curl",
    "func_curl", "app_sms", "res_parking", "app_confbridge", "bridge_softmix", "app_page",
    "res_corosync", "res_audiosocket", "app_audiosocket", "res_cdrel_custom", "res_tonedetect",
    "res_security_log", "res_convert", "func_pjsip", "res_crypto", "res_stun_monitor",
    "res_format_attr", "app_mp3", "app_externalivr", "res_clialiases", "func_enum",
    "res_manager_", "app_sla", "app_meetme", "pbx_spool")

# The toggle's prompts, shortened by shorten_prompts.
PROMPTS = ["agent-loginok", "agent-loggedoff", "pbx-invalid", "sorry-youre-having-problems", "agent-pass",
           "agent-incorrect", "followme/call-from", "followme/options"] + \
    [f"digits/{d}" for d in range(10)]


def render(template, values, name="a config file"):
    """template with every @NAME@ replaced by values["@NAME@"]; SetupError
    naming the file when one is left (a placeholder the caller forgot)."""
    text = template
    for key, value in values.items():
        text = text.replace(key, value)
    left = PLACEHOLDER.search(text)
    if left:
        raise SetupError("Asterisk test config", f"{name}: placeholder {left.group(0)} is left unfilled")
    return text


def write_conf_files(root, folder, values, dest=ETC):
    """Every *.conf of folder, rendered, into dest inside the root."""
    for src in sorted(Path(folder).glob("*.conf")):
        text = render(src.read_text(), values, src.name)
        if src.name in SECRET_FILES:
            root.write(f"{dest}/{src.name}", text, mode=0o640, owner="root:asterisk")
        else:
            root.write(f"{dest}/{src.name}", text)


def modules_noload(root, keep=()):
    """noload lines for what the tests do not need (faster, quieter start);
    the modules named in keep are loaded all the same."""
    wanted = set(SIP_MODULES) | set(keep)
    names = sorted(f.name for f in root.p(MODULES_DIR).glob("*.so")
                   if f.name.startswith(UNNEEDED_MODULES) and f.name[:-3] not in wanted)
    return "".join(f"noload => {n}\n" for n in names)


def write_modules_noload(root, keep=()):
    """modules_noload.conf, which pbx/modules.conf includes."""
    root.write(f"{ETC}/modules_noload.conf", modules_noload(root, keep))


def write_test_config(root, ami_port, ami_secret, sip_port):
    """Write the test PBX's Asterisk configuration (tests/e2e/pbx/) into the
    root, make the folders it names, and shorten the toggle's prompts."""
    write_conf_files(root, PBX_DIR, {
        "@AGI_DIR@": AGI_DIR, "@AMI_PORT@": str(ami_port), "@AMI_SECRET@": ami_secret,
        "@SIP_PORT@": str(sip_port), "@CALLS_DIR@": CALLS_DIR, "@BENCH_FLOOR_SCRIPT@": BENCH_FLOOR_SCRIPT})
    write_modules_noload(root)
    shorten_prompts(root)
    root.sh(f"mkdir -p {CALLS_DIR} /var/run/asterisk {AGI_DIR} && "
            f"chown asterisk:asterisk /var/run/asterisk {CALLS_DIR} && chmod 755 {CALLS_DIR} && "
            "chown -R asterisk:asterisk /var/log/asterisk /var/lib/asterisk /var/spool/asterisk "
            "/var/cache/asterisk 2>/dev/null; true", check=True)


def sounds_dir(root):
    """The English sounds' real folder inside the root (a symlink in Debian)."""
    return root.sh("readlink -f /usr/share/asterisk/sounds/en", check=True).stdout.strip()


def shorten_prompts(root, frames=5):
    """Cut the toggle's prompts to their first 100 ms (5 GSM frames of 33
    bytes: still valid GSM) in this run's overlay, so that a login, which
    says 11 digits, takes 3 s instead of 11. Asterisk still plays each file;
    the log names them as before. The cached chroot keeps the originals."""
    sounds = sounds_dir(root)
    for name in PROMPTS:
        f = root.p(f"{sounds}/{name}.gsm")
        data = f.read_bytes()                       # missing file: fail loudly
        f.write_bytes(data[:33 * frames])
