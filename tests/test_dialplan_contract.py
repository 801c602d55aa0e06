"""The dialplan contract (qmt.dialplan) against the .conf, both ways: every
name and default the package holds is the one the dialplan uses, and the
dialplan reads no variable that neither it nor the script sets."""

import os
import re

import pytest

from lint_dialplan import DIALPLAN
from qmt import dialplan as contract
from qmt.config import Settings
from qmt.pbx import toggle_lock_name

# Asterisk's own variables and those of FreePBX that the dialplan reads.
ASTERISK_VARIABLES = {"ARG1", "ARG2", "EXTEN", "CHANNEL", "AGISTATUS", "AQMSTATUS", "RQMSTATUS", "UPQMSTATUS",
                      "PQMSTATUS", "DIALSTATUS", "RINGTIME", "HANGUPCAUSE", "GOSUB_RETVAL", "READSTATUS",
                      "TRYSTATUS", "EPOCH", "NODEST", "DB_RESULT"}
PER_QUEUE = (contract.QMT_QUEUE, contract.QMT_PENALTY, contract.QMT_NAME, contract.QMT_IFACE)
ANSWER = {contract.QUEUEUSER, contract.QUEUESTAT, contract.QAGENT_UNAUTHORIZED, contract.QMT_REASON,
          contract.QMT_INTERFACE, contract.QMT_COUNT}


@pytest.fixture(scope="module")
def conf():
    with open(DIALPLAN, encoding="utf-8") as handle:
        return "\n".join(line.split(";", 1)[0].rstrip() for line in handle)


def context(conf, name):
    return re.search(r"^\[%s\]\n(.*?)(?=^\[|\Z)" % re.escape(name), conf, re.S | re.M).group(1)


def read_variables(conf):
    """Every ${NAME} the dialplan reads (a name built from another, as
    QMT_QUEUE_${QMT_I}, as its prefix with _%d)."""
    names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)[}:]", conf))
    names |= {prefix + "%d" for prefix in re.findall(r"\$\{([A-Z][A-Z0-9_]*_)\$\{QMT_I\}\}", conf)}
    return names


def set_variables(conf):
    """Every variable the dialplan sets itself (Set, LOCAL, Read, MSet-free v())."""
    names = set(re.findall(r"\bSet\((?:LOCAL\()?_{0,2}([A-Z][A-Z0-9_]*)\)?=", conf))
    names |= {prefix + "%d" for prefix in re.findall(r"\bSet\(LOCAL\(([A-Z][A-Z0-9_]*_)\$\{QMT_I\}\)=", conf)}
    names |= set(re.findall(r"\bRead\(([A-Z][A-Z0-9_]*),", conf))
    names |= set(re.findall(r"[v^(]([A-Z][A-Z0-9_]*)=\$", conf))           # Originate's v(NAME=...^NAME=...)
    return names


def test_the_file_and_script_names_are_the_contracts():
    assert os.path.basename(DIALPLAN) == contract.DIALPLAN_FILE


def test_every_context_is_named_in_the_contract_and_no_other(conf):
    assert sorted(re.findall(r"^\[([a-z0-9-]+)\]", conf, re.M)) == sorted(contract.CONTEXTS)
    assert "AGI(%s," % contract.AGI_SCRIPT in conf


def test_the_dialplan_reads_every_answer_variable_of_the_script(conf):
    """But QAGENT_UNAUTHORIZED: FreePBX's name, for the admin's own dialplan
    after ours (ours sets it, on a refusal)."""
    read = read_variables(conf)
    assert ANSWER - {contract.QAGENT_UNAUTHORIZED} <= read
    assert "Set(%s=1)" % contract.QAGENT_UNAUTHORIZED in conf
    assert set(PER_QUEUE) <= read
    assert {variable for variable, _key in contract.RING_SETTINGS} <= read


def test_the_dialplan_reads_no_variable_that_nobody_sets(conf):
    """A name the script renamed would otherwise read as empty, silently."""
    known = ANSWER | set(PER_QUEUE) | {variable for variable, _key in contract.RING_SETTINGS}
    unset = read_variables(conf) - set_variables(conf) - known - ASTERISK_VARIABLES
    assert unset == set()


def test_the_fastagi_switch_url_and_served_mark_are_the_contracts(conf):
    toggle = context(conf, "qmt-toggle")
    assert "${DB_EXISTS(%s/%s)}" % (contract.FASTAGI_FAMILY, contract.FASTAGI_PORT_KEY) in toggle
    assert "AGI(agi://%s:${QMT_FASTAGI}/%s," % (contract.FASTAGI_HOST, contract.FASTAGI_SCRIPT) in toggle
    assert "Set(%s=)" % contract.SERVED in toggle and '"${%s}" != ""' % contract.SERVED in toggle
    assert contract.FASTAGI_FAMILY not in (contract.RING_FAMILY, contract.PIN_FAMILY)


def test_the_answer_the_script_sends_uses_the_contracts_names():
    from qmt.rules import Decision, Grant, answer_variables
    grant = Grant("8008", 0, "Ivan", "active")
    login = Decision(contract.LOGGEDOUT, "member", [grant])
    ring = Settings.defaults().ring_variables(True)
    names = [name for name, _ in answer_variables("79001234567", login, "Local/79001234567@qmt-ring/n", ring)]
    assert set(names) == ANSWER | {pattern % 1 for pattern in PER_QUEUE} | \
        {variable for variable, _key in contract.RING_SETTINGS}
    assert names[-1] == contract.QUEUESTAT


def test_every_ring_setting_is_stored_under_its_astdb_key_at_login(conf):
    settings = context(conf, "qmt-ring-settings")
    for variable, key in contract.RING_SETTINGS:
        assert "Set(DB(${QMT_DB}/%s)=${%s})" % (key, variable) in settings
    assert "Set(LOCAL(QMT_DB)=%s/${QUEUEUSER})" % contract.RING_FAMILY in settings


def test_the_dialplan_uses_no_astdb_key_outside_the_contract(conf):
    keys = set(re.findall(r"DB\(\$\{QMT_DB\}/([a-z_]+)\)", conf))
    assert keys == {key for _variable, key in contract.RING_SETTINGS} | set(contract.RING_STATE_KEYS)
    families = set(re.findall(r"Set\((?:LOCAL\()?QMT_DB\)?=([a-z-]+)/", conf)) | \
        set(re.findall(r"DB\(([a-z-]+)/\$\{", conf))
    assert families == {contract.RING_FAMILY}


def fallbacks(conf):
    """{astdb key: the dialplan's fallback when the key is missing}: a
    variable read from DB(${QMT_DB}/key), then set when empty."""
    read_from = dict((variable, key) for variable, key in re.findall(
        r"Set\((?:LOCAL\()?(\w+)\)?=(?:\$\{FILTER\(0-9,)?\$\{DB\(\$\{QMT_DB\}/(\w+)\)\}", conf))
    found = {}
    for variable, value in re.findall(r'ExecIf\(\$\["\$\{(\w+)\}" = ""\]\?Set\((?:LOCAL\()?\1\)?=([^)]*)\)\)', conf):
        if variable in read_from:
            found[read_from[variable]] = value
    return found


def test_the_dialplans_fallbacks_are_the_built_in_ring_defaults(conf):
    """(An empty `announce` is not a missing value: it means the built-in
    prompt, followme/call-from.)"""
    found = fallbacks(conf)
    assert found.pop("announce") == "followme/call-from"
    assert found == {key: str(value) for key, value in contract.RING_DEFAULTS.items()}


def test_the_configs_defaults_are_the_built_in_ring_defaults():
    settings = Settings.defaults()
    assert (settings.route, settings.ring_seconds, settings.answer_wait, settings.pause_after) == tuple(
        contract.RING_DEFAULTS[key] for key in ("route", "ring_seconds", "answer_wait", "pause_after"))


def test_the_member_interface_is_the_ring_paths(conf):
    assert contract.MEMBER_INTERFACE.format(number="X") == "Local/X@%s/n" % contract.RING_CONTEXT
    assert "PauseQueueMember(,%s,,%s)" % (contract.MEMBER_INTERFACE.format(number="${ARG1}"),
                                          contract.PAUSE_MISSED) in conf
    assert Settings.defaults().interface_for("79001234567") == contract.MEMBER_INTERFACE.format(number="79001234567")


def test_the_lock_the_dialplan_releases_is_the_one_the_script_takes(conf):
    assert toggle_lock_name("${QUEUEUSER}") == contract.LOCK_PREFIX + "${QUEUEUSER}"
    assert re.findall(r"UNLOCK\(([^)]*)\)", conf) == [contract.LOCK_PREFIX + "${QUEUEUSER}"]


def test_queuestat_branches_use_the_contracts_states(conf):
    compared = set(re.findall(r'"\$\{QUEUESTAT\}" = "([A-Z]+)"', conf))
    assert compared == set(contract.QUEUESTAT_VALUES) - {contract.ERROR}
    assert "Set(QUEUESTAT=%s)" % contract.ERROR in conf          # the preset: what stands without an answer


def test_queue_log_events_and_pause_reasons_are_the_contracts(conf):
    events = set(re.findall(r"\b(QMT[A-Z]+)\b", conf))       # (our variables are QMT_<name>)
    assert events == set(contract.QUEUE_LOG_EVENTS)
    assert "QueueLog(" in context(conf, "qmt-ring-missed") and "QueueLog(" in context(conf, "qmt-confirm")
    assert "UnpauseQueueMember(${QMT_Q},${QMT_IF},,%s)" % contract.RESUMED in conf


def test_loop_variables_of_subroutines_are_local(conf):
    """A Gosub's counters must not leak into its caller's (nested loops)."""
    for name in ("qmt-add-members", "qmt-undo-adds", "qmt-remove-members", "qmt-resume-members", "qmt-confirm"):
        body = context(conf, name)
        assert "Set(LOCAL(QMT_I)=1)" in body and "Set(QMT_I=" not in body, name
