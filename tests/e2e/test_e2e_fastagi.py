"""The dialplan's FastAGI switch on a real Asterisk 22, and install.sh
--fastagi in the chroot (which has no systemd).

The switch (astdb qmt-fastagi/port) sends a call to the server first; the
classic script decides only when no command of the server reached the
call: a server that is stopped falls back (a WARNING, one decision), a
server lost after its first command does not (the error prompt, nothing
changed: never a second decision), a switch that is no port is ignored.
The calls the server decides are tests/e2e/test_e2e_fastagi_served.py."""

import re

import pytest

from harness.asterisk import Asterisk
from harness.fastagi import QMT, DropAfterFirstCommand, Server, switch_off, switch_on, switch_value
from harness.logs import prompts
from harness.root import WHEELS_IN_ROOT
from qmt.install.facts import FASTAGI_UNIT_FILE, MANIFEST
from test_e2e_toggle import DIGITS, IFACE, NUM, assert_members, new_log, new_queue_log, qlog

# the WARNING line itself (the full log also has the Log() step's own line)
FALLBACK = re.compile(r"WARNING\[[^\n]*queue-mobile-toggle: fastagi at 127\.0\.0\.1:(\d+) not reached"
                      r" \(AGISTATUS=(\w+)\), classic script used")
# full log: Executing [s@qmt-toggle:N] AGI("<channel>", "<script>,<args>")
AGI_RUN = re.compile(r'\] AGI\("[^"]+", "([^",]+),')
SCRIPT = "queue_mobile_toggle.py"


def agi_runs(log):
    """The AGI scripts or URLs that ran, in order."""
    return AGI_RUN.findall(log)


def decisions(pbx, mark, number=NUM):
    """The toggle's decision lines for number since mark (lines of its log)."""
    return [line for line in pbx.qmt_log()[mark:] if f"number={number} " in line]


@pytest.fixture
def switch(clean):
    """The clean PBX; the FastAGI switch is off again after the test."""
    yield clean
    switch_off(clean.ast)


def test_a_stopped_server_falls_back_to_the_classic_script_with_one_decision(switch):
    pbx = switch
    pbx.allow(NUM, "8008")
    server = Server(pbx.root).start()
    assert server.stop() == 0                          # SIGTERM: exit 0, and nothing listens there now
    port = server.port
    assert f"queue-mobile-toggle: fastagi serving on 127.0.0.1:{port}" in "\n".join(pbx.qmt_log())
    switch_on(pbx.ast, port)
    mark = len(pbx.qmt_log())
    r = pbx.ast.call(NUM)
    assert (r["AGISTATUS"], r["QUEUESTAT"], r["AQMSTATUS"]) == ("SUCCESS", "LOGGEDOUT", "ADDED"), r
    assert prompts(r["_log"]) == ["agent-loginok"] + DIGITS
    log = new_log(pbx)
    assert FALLBACK.findall(log) == [(str(port), "FAILURE")]
    assert agi_runs(log) == [f"agi://127.0.0.1:{port}/queue_mobile_toggle", SCRIPT]
    assert len(decisions(pbx, mark)) == 1 and "action=login" in decisions(pbx, mark)[0]
    assert qlog(pbx, "ADDMEMBER") == ["8008"]
    assert_members(pbx, {"8008": {IFACE: (0, NUM)}})
    doctor = pbx.root.sh("qmt doctor", timeout=60)
    assert doctor.returncode == 1
    assert f"[FAIL]    fastagi: on at 127.0.0.1:{port}, but no server answers there: every call falls back to the" \
        " classic script" in doctor.stdout, doctor.stdout


@pytest.mark.parametrize("value", ["4573;x", "127.0.0.1:4573", "123456", "${SHELL(id)}"])
def test_a_switch_that_is_no_port_means_the_classic_script_and_no_connection(switch, value):
    pbx = switch
    pbx.allow(NUM, "8008")
    switch_on(pbx.ast, value)
    assert switch_value(pbx.ast) == value
    r = pbx.ast.call(NUM)
    assert (r["QUEUESTAT"], r["AQMSTATUS"]) == ("LOGGEDOUT", "ADDED"), r
    log = new_log(pbx)
    assert agi_runs(log) == [SCRIPT]
    assert not FALLBACK.search(log) and "agi://" not in log and "uid=" not in log


def test_a_server_lost_after_its_first_command_is_never_followed_by_a_second_decision(switch):
    """The served mark is set, then the connection drops: the presets stand
    (the error prompt), the classic script does not run, nothing changes."""
    pbx = switch
    pbx.allow(NUM, "8008")
    peer = DropAfterFirstCommand()
    mark = len(pbx.qmt_log())
    try:
        switch_on(pbx.ast, peer.port)
        r = pbx.ast.call(NUM)
    finally:
        peer.close()
    assert peer.served == ["200 result=1"]             # Asterisk set the mark, once
    assert (r["QUEUESTAT"], r["QMT_REASON"], r["AQMSTATUS"]) == ("ERROR", "no_answer", ""), r
    assert prompts(r["_log"]) == ["sorry-youre-having-problems"]
    log = new_log(pbx)
    assert agi_runs(log) == [f"agi://127.0.0.1:{peer.port}/queue_mobile_toggle"]
    assert not FALLBACK.search(log)
    assert decisions(pbx, mark) == []
    assert_members(pbx, {})
    assert new_queue_log(pbx) == []


# ------------------------------------------------------- install.sh --fastagi
def install(pbx, *args):
    p = pbx.root.install("--wheelhouse", WHEELS_IN_ROOT, *args)
    assert p.returncode == 0, p.stdout + p.stderr
    return [line for line in p.stdout.splitlines() if " fastagi: " in line]


def test_install_fastagi_without_systemd_says_so_and_turns_the_mode_on_only_for_a_server_that_answers(switch):
    """The chroot has no systemd: the unit is written, not started, and the
    dialplan stays classic until a server answers (here one the test starts
    as the unit would); an install without the option keeps the mode;
    --no-fastagi turns it off and removes the unit."""
    pbx = switch
    root = pbx.root
    unit = root.p(FASTAGI_UNIT_FILE)
    config = root.p("/etc/asterisk/queue_mobile_toggle.conf").read_text()
    assert "\nport = 4573\n" in config or "[fastagi]" not in config   # the default port
    server = None
    try:
        lines = install(pbx, "--fastagi")
        assert lines[0] == f"[changed] fastagi: installed {FASTAGI_UNIT_FILE} (mode 644, root:root)"
        assert lines[1].startswith("[note]    fastagi: systemd is not running here") and \
            f"runuser -u asterisk -- {QMT} serve" in lines[1]
        assert lines[2].startswith("[note]    fastagi: not turned on: no answer from qmt serve at 127.0.0.1:4573")
        assert switch_value(pbx.ast) == ""
        assert f"ExecStart={QMT} serve" in unit.read_text() and "User=asterisk" in unit.read_text()
        assert f"fastagi_unit={FASTAGI_UNIT_FILE}" in root.p(MANIFEST).read_text().splitlines()

        server = Server(root, 4573).start()            # what the admin starts by hand, as the note says
        lines = install(pbx, "--fastagi")
        assert lines[-1].startswith("[changed] fastagi: on, the dialplan asks qmt serve ") and \
            lines[-1].endswith(" at 127.0.0.1:4573 (astdb qmt-fastagi/port)")
        assert switch_value(pbx.ast) == "4573"
        assert install(pbx)[-1].startswith("[ok]      fastagi: on, the dialplan asks qmt serve ")
        check = root.install("--check")
        assert check.returncode == 0, check.stdout
        assert "[note]    fastagi: " + FASTAGI_UNIT_FILE + " is in place, but systemd is not running here" \
            in check.stdout
        assert "[PASS]    fastagi: on at 127.0.0.1:4573: qmt serve " in check.stdout    # qmt doctor's line

        assert install(pbx, "--no-fastagi") == [
            "[changed] fastagi: off, the dialplan runs the classic script (astdb qmt-fastagi/port deleted)",
            f"[changed] fastagi: stopped and removed {FASTAGI_UNIT_FILE}"]
        assert switch_value(pbx.ast) == "" and not unit.exists()
        assert install(pbx) == ["[ok]      fastagi: off, the dialplan runs the classic script (install.sh"
                                " --fastagi turns the server on)"]
    finally:
        if server:
            assert server.stop() == 0                  # SIGTERM: exit 0
        install(pbx, "--no-fastagi")


def test_fastagi_options_go_with_an_install_only_and_exclude_each_other(pbx):
    for args in (["--check", "--fastagi"], ["--uninstall", "--no-fastagi"], ["--fastagi", "--no-fastagi"]):
        p = pbx.root.install(*args)
        assert p.returncode == 2 and "--help" in p.stderr, (args, p.stderr)


def test_uninstall_removes_the_unit_and_the_switch(throwaway_root):
    root = throwaway_root
    ast = Asterisk(root).start()
    try:
        p = root.install("--wheelhouse", WHEELS_IN_ROOT, "--fastagi")
        assert p.returncode == 0 and root.p(FASTAGI_UNIT_FILE).exists(), p.stdout + p.stderr
        switch_on(ast, 4573)                            # as --fastagi writes it once a server answers
        p = root.install("--uninstall")
        assert p.returncode == 0, p.stdout + p.stderr
        assert f"[changed] fastagi: stopped and removed {FASTAGI_UNIT_FILE}" in p.stdout
        assert "[changed] asterisk: removed astdb family qmt-fastagi (1 keys)" in p.stdout
        assert not root.p(FASTAGI_UNIT_FILE).exists() and switch_value(ast) == ""
    finally:
        ast.stop()
