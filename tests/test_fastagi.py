"""`qmt serve`, the FastAGI server (issue 17), as a process over TCP: calls
decided in parallel, a hung database that stalls no other call, the script
names it answers, the health probe, a hangup line, a silent client cut by
the watchdog, and how it starts and stops. The decisions themselves are
tested in both modes by the AGI-level tests (conftest's agi_mode) and the
property tests."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from fake_asterisk import FASTAGI_SCRIPT, FakeAsterisk, FastAgiServers, QmtServe, environment_key, free_port
from qmt import __version__
from qmt.dialplan import SERVED
from qmt.fastagi import probe
from support import REPO

N = "79112223344"
IFACE = "Local/%s@qmt-ring/n" % N
PARALLEL = 40


@pytest.fixture
def served(toggle):
    """The toggle's calls go to a `qmt serve` (started at the first call)."""
    servers = FastAgiServers()
    toggle.asterisk.fastagi = servers
    toggle.servers = servers
    yield toggle
    assert servers.stop_all() in ([], [0])


def server_of(toggle):
    return toggle.servers.server_for(toggle.env)


def decision_lines(toggle):
    return [line for line in toggle.log_lines() if "queue-mobile-toggle:" in line]


def connect(server):
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_all(connection):
    """Everything the server sends until it closes (a timeout fails the test)."""
    received = b""
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            return received
        received += chunk


def calls_in_parallel(toggle, count, callerid, queue, members, **kwargs):
    """`count` calls at once, each on a fake Asterisk of its own (the
    queues as `members` says); their runs, in order."""
    runs, failures = [None] * count, []

    def call(index):
        try:
            asterisk = FakeAsterisk({"8008": list(members), "8010": []}, fastagi=toggle.servers)
            runs[index] = asterisk.run(callerid, arg=queue, env=toggle.env, **kwargs)
        except Exception as exc:  # reported below, with the others
            failures.append(exc)

    threads = [threading.Thread(target=call, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    return runs


def threads_of(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def descriptors_of(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


# -- calls at once ------------------------------------------------------------

def test_many_calls_are_decided_at_the_same_time(served):
    """Each call holds its first reply until all of them have sent their
    first command: only a server that answers them all at once gets there."""
    served.allowlist.add(N, "8008")
    server_of(served)
    everyone_asked = threading.Barrier(PARALLEL)

    def hold_the_echo(command, args):
        if args and args[0].startswith("${SET(%s=" % SERVED):
            everyone_asked.wait(30)
        return None

    runs = calls_in_parallel(served, PARALLEL, N, "8008", [], reply_override=hold_the_echo)
    assert [(run.state, run.exit_code, run.killed_by_peer) for run in runs] == [("LOGGEDOUT", 0, False)] * PARALLEL
    assert len(decision_lines(served)) == PARALLEL
    assert len({line.rsplit("uniqueid=", 1)[1] for line in decision_lines(served)}) == 1   # the fakes' one id


def wait_until(condition, seconds=10):
    """True once `condition()` is, False if `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def settled(pid):
    """(threads, descriptors) of the server once only its main thread runs:
    a call's thread may still be closing just after its connection ended."""
    wait_until(lambda: threads_of(pid) == 1)
    return threads_of(pid), descriptors_of(pid)


def test_after_a_burst_no_thread_or_descriptor_is_left(served):
    served.allowlist.add(N, "8008")
    server = server_of(served)
    pid = server.process.pid
    idle = settled(pid)
    runs = calls_in_parallel(served, PARALLEL, N, None, [])
    assert {run.state for run in runs} == {"LOGGEDOUT"}
    assert idle[0] == 1 and settled(pid) == idle


def test_a_hung_database_stalls_no_other_call(served, tmp_path):
    """A stranger's lookup waits on a database locked by another connection
    (the driver would wait 60 s): while it waits, members of 8008 log out,
    one after another, and only then does the stranger's bound refuse him."""
    served.odbc.add_dsn("qmt_test", Driver="SQLite3", Database=str(tmp_path / "allowlist.sqlite"),
                        NoCreat=1, Timeout=60000)
    served.configure(timeout=5)                      # the window in which the others must be decided
    server_of(served)
    holder = sqlite3.connect(str(tmp_path / "allowlist.sqlite"))
    holder.execute("BEGIN EXCLUSIVE")
    try:
        in_lookup = threading.Event()
        stranger = []

        def stranger_calls():
            asterisk = FakeAsterisk({"8008": [], "8010": []}, fastagi=served.servers)
            # QUEUE_EXISTS is asked while the lookup runs (it overlaps the questions to Asterisk).
            stranger.append(asterisk.run("79990001122", arg="8008", env=served.env, reply_override=lambda c, a: (
                in_lookup.set() if a and a[0].startswith("QUEUE_EXISTS") else None)))

        waiting = threading.Thread(target=stranger_calls)
        waiting.start()
        assert in_lookup.wait(10)
        members = [FakeAsterisk({"8008": [IFACE], "8010": []}, fastagi=served.servers).run(
            N, arg="8008", env=served.env) for _ in range(5)]
        still_waiting = waiting.is_alive()
        waiting.join(20)
    finally:
        holder.rollback()
        holder.close()
    assert [(run.state, run.get("QMT_REASON")) for run in members] == [("LOGGEDIN", "member")] * 5
    assert still_waiting, "the stranger's call ended before the others: the database did not hang"
    assert (stranger[0].state, stranger[0].get("QMT_REASON")) == ("ERROR", "db_timeout")
    assert "reason=db_timeout" in decision_lines(served)[-1]


def test_past_its_most_calls_at_once_a_call_is_closed_unanswered_for_the_classic_script(served):
    """With 100 descriptors the server holds (100 - 64) // 3 = 12 calls. A
    13th connection is closed before any command (QMT_SERVED stays empty,
    so the dialplan runs the classic script); once a call ends, calls are
    answered again."""
    served.allowlist.add(N, "8008")
    server = QmtServe(served.env, descriptors=100)
    try:
        held = [connect(server) for _ in range(12)]
        with connect(server) as one_more:
            assert read_all(one_more) == b""
        ending = held.pop()
        ending.shutdown(socket.SHUT_WR)              # its call ends (a refused script (none) line)...
        assert read_all(ending) == b""               # ...and its place is free once it is closed
        ending.close()
        served.servers.servers[tuple(sorted(served.env.items()))] = (environment_key(served.env), server)
        assert served.call(N, "8008").state == "LOGGEDOUT"
        for connection in held:
            connection.close()
    finally:
        assert server.stop() == 0
        served.servers.servers.clear()
    assert "queue-mobile-toggle: fastagi busy: 12 calls at once, one closed unanswered (the classic script " \
        "takes it)" in served.log_lines()[0]


# -- what a connection may ask ------------------------------------------------

def test_an_unknown_script_name_is_refused_with_one_line_and_no_command(served):
    server = server_of(served)
    with connect(server) as connection:
        block = FakeAsterisk.start_block(N, "8008").replace("queue_mobile_toggle.py", "agi://127.0.0.1/other")
        connection.sendall(("agi_network: yes\nagi_network_script: other;rm -rf\n" + block).encode())
        assert read_all(connection) == b""
    lines = decision_lines(served)
    assert len(lines) == 1 and lines[0].endswith("queue-mobile-toggle: fastagi refused script other;rm -rf: not "
                                                 + FASTAGI_SCRIPT), lines


def test_the_health_probe_gets_the_version_and_nothing_else(served):
    server = server_of(served)
    assert probe(server.port) == __version__
    with connect(server) as connection:
        connection.sendall(b"agi_network: yes\nagi_network_script: qmt-health\n\n")
        assert read_all(connection) == ("NOOP qmt-serve %s\n" % __version__).encode()
    assert decision_lines(served) == []


def test_the_probe_says_none_where_no_server_answers():
    assert probe(free_port(), 1.0) is None
    with socket.socket() as silent:                  # listens, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        assert probe(silent.getsockname()[1], 0.5) is None


def test_a_hangup_line_during_the_pin_ends_the_call_unanswered(served):
    """res_agi writes HANGUP where a classic script gets SIGHUP: the call
    ends as channel_gone before its next command, and nothing is counted."""
    from qmt.pin import hash_pin
    served.allowlist.execute("INSERT INTO queue_mobile_agents (number, queue, pin_hash) VALUES (?, '8008', ?)",
                             N, hash_pin("802457", iterations=1000))
    served.asterisk.keyed = ["1111#"]
    first = served.call(N, "8008")
    prompt_at = next(index for index, command in enumerate(first.commands, 1) if command.startswith("GET DATA"))
    served.asterisk.astdb.clear()
    served.asterisk.keyed = ["1111#"]
    run = served.call(N, "8008", hangup_after=prompt_at)
    assert run.exit_code == 0 and not run.killed_by_peer
    assert len(run.commands) == prompt_at, "a command was sent after the HANGUP line"
    assert run.get("QUEUESTAT") is None and ("qmt-pin", N) not in served.asterisk.astdb
    assert "state=ERROR action=none reason=channel_gone detail=AGISIGHUPHangup" in decision_lines(served)[-1]


def test_a_client_that_says_nothing_is_cut_by_the_watchdog_while_others_are_served(served):
    served.allowlist.add(N, "8008")
    served.configure(timeout=1)                      # the start block's bound: 1 + 3 s
    server = server_of(served)
    with connect(server) as silent:
        assert served.call(N, "8008").state == "LOGGEDOUT"
        assert read_all(silent) == b"", "the silent connection was not closed"
    assert served.call(N, "8008").state == "LOGGEDOUT"
    lines = decision_lines(served)
    assert len(lines) == 3, lines                    # two calls, and the silent connection's refusal
    assert lines[1].endswith("fastagi refused script (none): not %s (start block cut short by EOF)" % FASTAGI_SCRIPT)


# -- starting and stopping ----------------------------------------------------

def qmt_serve(toggle, *args, timeout=20):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "agi"), **toggle.env)
    return subprocess.run([sys.executable, "-m", "qmt", "serve", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_a_taken_port_refuses_the_start_with_one_line_and_exit_1(toggle):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = qmt_serve(toggle, "--port", str(port))
    assert result.returncode == 1
    assert result.stderr == "qmt: serve: cannot listen on 127.0.0.1:%d: Address already in use\n" % port


def test_a_bad_config_refuses_the_start_with_one_line_and_exit_1(toggle):
    toggle.configure(extra="\n[fastagi]\nport = 70000\n")
    result = qmt_serve(toggle)
    assert result.returncode == 1
    assert result.stderr == "qmt: config: fastagi.port must be a whole number from 1 to 65535\n"


@pytest.mark.parametrize("port", ["0", "65536", "45a", "٤٥٧٣"])
def test_a_port_option_that_is_no_port_is_a_usage_error(toggle, port):
    result = qmt_serve(toggle, "--port", port)
    assert result.returncode == 2 and "argument --port: a port from 1 to 65535" in result.stderr


def test_the_port_comes_from_the_config(toggle):
    port = free_port()
    toggle.configure(extra="\n[fastagi]\nport = %d\n" % port)
    server = QmtServe(toggle.env, port, from_config=True)
    try:
        assert probe(port) == __version__
    finally:
        assert server.stop() == 0


def test_sigterm_ends_the_server_with_exit_0_and_frees_the_port(served):
    """After the stop, connecting fails: the dialplan's cue to run the
    classic script for the call."""
    served.allowlist.add(N, "8008")
    assert served.call(N, "8008").state == "LOGGEDOUT"
    server = server_of(served)
    assert server.stop() == 0
    served.servers.servers.clear()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5)
    assert served.log_lines()[-1].endswith("queue-mobile-toggle: number=%s channel=PJSIP/trunk-00000001 "
                                           "queues=8008 state=LOGGEDOUT action=login reason=permitted "
                                           "uniqueid=1764219000.42" % N)


def test_a_call_in_progress_at_sigterm_is_finished_while_new_calls_are_refused(served):
    served.allowlist.add(N, "8008")
    server = server_of(served)
    asked, go_on, held = threading.Event(), threading.Event(), []

    def hold_the_echo(command, args):
        if args and args[0].startswith("${SET(%s=" % SERVED):
            asked.set()
            go_on.wait(20)

    caller = threading.Thread(target=lambda: held.append(served.call(N, "8008", reply_override=hold_the_echo)))
    caller.start()
    assert asked.wait(10)
    server.process.send_signal(signal.SIGTERM)
    assert wait_until(lambda: not port_open(server.port)), "the listening socket stayed open"
    assert server.process.poll() is None, "the server left a call in progress"
    go_on.set()
    caller.join(20)
    assert held[0].state == "LOGGEDOUT"
    assert server.stop() == 0
    served.servers.servers.clear()


def port_open(port):
    """False once connecting is refused (or reset: queued as the listening socket closed)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except (ConnectionRefusedError, ConnectionResetError):
        return False


def test_the_server_logs_its_start_and_its_stop(served):
    server = server_of(served)
    assert server.stop() == 0
    served.servers.servers.clear()
    with open(served.log_file, encoding="utf-8") as handle:
        lines = [line.split("] ", 1)[1].rstrip("\n") for line in handle]
    assert lines == ["queue-mobile-toggle: fastagi serving on 127.0.0.1:%d" % server.port,
                     "queue-mobile-toggle: fastagi stopped"]


def test_sighup_is_logged_and_ignored_the_config_is_read_at_start(served):
    served.allowlist.add(N, "8008")
    server = server_of(served)
    server.process.send_signal(signal.SIGHUP)
    assert served.call(N, "8008").state == "LOGGEDOUT"
    lines = decision_lines(served)
    assert lines[0].endswith("queue-mobile-toggle: fastagi ignores SIGHUP: the config is read at start; restart "
                             "the service to apply a change") and len(lines) == 2, lines


def test_sigint_stops_it_as_sigterm_does(toggle):
    server = QmtServe(toggle.env)
    server.process.send_signal(signal.SIGINT)
    assert server.stop() == 0
