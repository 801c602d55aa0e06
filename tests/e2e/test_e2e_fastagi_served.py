"""The same calls decided by `qmt serve` over FastAGI on a real Asterisk 22.

Every test here runs with the dialplan's switch on and one server process
for the whole module (as install.sh --fastagi runs it, the asterisk user),
and asserts afterwards that the server, never the classic script, decided
each of its calls. The server reads its config once: a test that edits the
config gets the server restarted before its next call, as an admin restarts
the service.

Chosen from the classic suites, one of each kind the server must get right
(about 3 minutes with the set-up; the three whole suites take far longer):
  toggle  login and logout in all queues and in one, penalties and names, a
          refusal, every hostile caller ID (the start block read strictly over
          the socket too), the allowlist gone, a member leaving without it,
          two and five calls from one number at once (the toggle's lock across
          one process's threads)
  pin     the PIN dialogue (GET DATA through the server), three wrong PINs,
          the lockout across calls and `qmt unlock`, for_logout turned on
          mid-test (the server restarted for it), four spellings of one number
          at once, a hang-up mid-PIN
  ring    the ring path settings a login hands the dialplan: a mobile that
          accepts, three missed calls that pause it, the resume, two customers
          reaching two mobiles
And a database that hangs: its call costs its own time bound, while the
other calls, decided by the same process, finish at once.
"""

import re
import sqlite3

import pytest

import test_e2e_pin as pin_tests
import test_e2e_ring as ring_tests
import test_e2e_toggle as toggle_tests
from harness.fastagi import Server, switch_off, switch_on, wait_until
from test_e2e_fastagi import AGI_RUN, FALLBACK
from test_e2e_toggle import NUM, OTHER, assert_members

# The fixtures those tests use, and the tests, re-run here with the server on.
pins, ring, ring_settings = pin_tests.pins, ring_tests.ring, ring_tests.ring_settings
test_permitted_login_then_logout_all_queues = toggle_tests.test_permitted_login_then_logout_all_queues
test_permitted_login_then_logout_one_queue = toggle_tests.test_permitted_login_then_logout_one_queue
test_two_queues_with_different_penalties = toggle_tests.test_two_queues_with_different_penalties
test_refused_number = toggle_tests.test_refused_number
test_allowlist_db_missing_plays_error_and_changes_nothing = \
    toggle_tests.test_allowlist_db_missing_plays_error_and_changes_nothing
test_simultaneous_calls_from_one_number_stay_consistent = \
    toggle_tests.test_simultaneous_calls_from_one_number_stay_consistent
test_hostile_caller_id_is_refused = toggle_tests.test_hostile_caller_id_is_refused
test_member_leaves_without_row_or_db = toggle_tests.test_member_leaves_without_row_or_db
test_the_right_pin_logs_in = pin_tests.test_the_right_pin_logs_in
test_three_wrong_pins_refuse_and_change_nothing = pin_tests.test_three_wrong_pins_refuse_and_change_nothing
test_wrong_pins_across_calls_lock_out_until_qmt_unlock = \
    pin_tests.test_wrong_pins_across_calls_lock_out_until_qmt_unlock
test_a_hang_up_mid_pin_is_logged_as_nothing_changed = pin_tests.test_a_hang_up_mid_pin_is_logged_as_nothing_changed
test_logout_needs_no_pin_by_default_but_does_with_for_logout = \
    pin_tests.test_logout_needs_no_pin_by_default_but_does_with_for_logout
test_parallel_calls_in_all_four_spellings_are_counted_together = \
    pin_tests.test_parallel_calls_in_all_four_spellings_are_counted_together
test_a_mobile_that_presses_1_is_connected_and_hears_the_confirmation = \
    ring_tests.test_a_mobile_that_presses_1_is_connected_and_hears_the_confirmation
test_a_paused_mobile_calling_the_code_is_resumed_then_the_next_call_logs_it_out = \
    ring_tests.test_a_paused_mobile_calling_the_code_is_resumed_then_the_next_call_logs_it_out
test_two_customers_at_once_reach_two_mobiles = ring_tests.test_two_customers_at_once_reach_two_mobiles

ODBC_INI = "/etc/odbc.ini"


@pytest.fixture(scope="module")
def server(pbx):
    """One `qmt serve` for the module; SIGTERM ends it with exit 0."""
    running = Server(pbx.root).start()
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(autouse=True)
def served(clean, server, monkeypatch):
    """The switch on for this test, the server restarted before a call when
    the config changed; afterwards: every call of the test was the server's."""
    switch_on(clean.ast, server.port)
    place = clean.ast.prepare

    def prepare_after_restart(*args, **kw):
        server.restart_if_config_changed()
        return place(*args, **kw)
    monkeypatch.setattr(clean.ast, "prepare", prepare_after_restart)
    mark = len(clean.ast.log_text())
    yield clean
    switch_off(clean.ast)
    log = clean.ast.log_text()[mark:]
    runs = AGI_RUN.findall(log)
    assert runs and set(runs) == {f"agi://127.0.0.1:{server.port}/queue_mobile_toggle"}, runs
    assert not FALLBACK.search(log)


@pytest.mark.parametrize("mode", ["silent"])
def test_three_missed_calls_pause_the_member_in_every_queue(ring, mode):
    """One of the classic test's three modes: a mobile that answers and never presses 1."""
    ring_tests.test_three_customer_calls_missed_pause_the_member_in_every_queue(ring, mode)


def agi_started(pbx, slot):
    return any("agi://" in line for line in pbx.ast.call_log(slot))


def done_at(log, slot):
    return log.index(f"QMT_DONE slot={slot} ")


def test_a_hung_database_costs_its_call_the_bound_while_the_servers_other_calls_finish(clean):
    """The allowlist locked by another program, SQLite told to wait a minute
    for it: a login (which must read the table) hangs until its own bound;
    a logout of one queue and a refused caller ID need no table, and are
    decided and answered during it, by the same process."""
    pbx = clean
    pbx.allow(NUM, "8008")
    pbx.allow(OTHER, "8010")
    assert pbx.ast.call(NUM, target="8008")["AQMSTATUS"] == "ADDED"
    odbc = pbx.root.p(ODBC_INI)
    before = odbc.read_text()
    patient, found = re.subn(r"(?m)^Timeout = [0-9]+$", "Timeout = 60000", before)
    assert found == 1, before
    odbc.write_text(patient)
    lock = sqlite3.connect(pbx.db, isolation_level=None)
    log_mark, qmt_mark = len(pbx.ast.log_text()), len(pbx.qmt_log())
    try:
        lock.execute("BEGIN EXCLUSIVE")
        hung = pbx.ast.place(OTHER, target="8010")
        wait_until(lambda: agi_started(pbx, hung), 15, "the hung call's FastAGI step")
        leave = pbx.ast.place(NUM, target="8008")
        stranger = pbx.ast.place("7911;rm -rf")
        quick = [pbx.ast.result(slot) for slot in (leave, stranger)]
        slow = pbx.ast.result(hung)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
        odbc.write_text(before)
    assert (slow["QUEUESTAT"], slow["QMT_REASON"]) == ("ERROR", "db_timeout"), slow
    assert (quick[0]["QUEUESTAT"], quick[0]["RQMSTATUS"]) == ("LOGGEDIN", "REMOVED"), quick[0]
    assert (quick[1]["QUEUESTAT"], quick[1]["QMT_REASON"]) == ("DENIED", "invalid_number"), quick[1]
    log = pbx.ast.log_text()[log_mark:]
    # the hung call was deciding before the others were placed, and answered after both
    assert max(done_at(log, leave), done_at(log, stranger)) < done_at(log, hung)
    # and the toggle's log has the three decisions in that order: the hung one last
    decided = [line for line in pbx.qmt_log()[qmt_mark:] if " action=" in line]
    assert len(decided) == 3 and f"number={OTHER} " in decided[-1] and "reason=db_timeout" in decided[-1], decided
    assert_members(pbx, {})
