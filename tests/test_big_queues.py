"""Queues of any size: the script over the fake Asterisk and its fake
manager. Asterisk cuts QUEUE_MEMBER_LIST() at its 4 KB buffer (some 140
mobiles); past the cut the script asks the manager about the caller's own
interfaces (QueueStatus filtered by Queue and Member), on one connection
per call, and only when the list was cut and did not name him."""

import pytest

from fake_ami import FakeAmi
from qmt.ami import AmiMembers, membership_in
from qmt.config import load_settings
from support import RING_INTERFACE

N = "79112223344"
IFACE = RING_INTERFACE.format(number=N)
OLD_IFACE = "Local/%s@outbound-allroutes/n" % N        # the interface before the ring path
DESKS = ["PJSIP/desk-%04d" % i for i in range(1000)]  # static members: 15 KB of names


def queue_status_questions(toggle, since=0):
    """(Queue, Member) of every QueueStatus the manager was asked, from `since`."""
    return [(fields.get("Queue"), fields.get("Member")) for action, fields in toggle.ami.actions[since:]
            if action.lower() == "queuestatus"]


def big_queue(toggle, queue, tail=()):
    toggle.asterisk.queues[queue] = DESKS + list(tail)


def test_a_number_in_no_big_queue_logs_in_then_out_when_listed_last(toggle):
    toggle.allowlist.add(N, "8008", penalty=2)
    big_queue(toggle, "8008")
    run = toggle.call(N, "8008")
    assert (run.state, run.queues, run.get("QMT_PENALTY_1")) == ("LOGGEDOUT", ["8008"], "2")
    # not a member by any of his interfaces: each asked once, in order
    assert queue_status_questions(toggle) == [("8008", IFACE), ("8008", OLD_IFACE)]
    toggle.act_as_dialplan(run)
    assert toggle.asterisk.queues["8008"][-1] == IFACE          # the last of 1,001

    run = toggle.call(N, "8008")
    assert (run.state, run.queues, run.get("QMT_IFACE_1")) == ("LOGGEDIN", ["8008"], IFACE)
    toggle.act_as_dialplan(run)
    assert IFACE not in toggle.asterisk.queues["8008"]


def test_a_member_beyond_the_cut_by_his_old_interface_leaves_by_it(toggle):
    big_queue(toggle, "8008", [OLD_IFACE])
    run = toggle.call(N, "8008")
    assert (run.state, run.queues, run.get("QMT_IFACE_1")) == ("LOGGEDIN", ["8008"], OLD_IFACE)


def test_a_paused_member_beyond_the_cut_is_resumed_from_one_answer(toggle):
    toggle.allowlist.add(N, "8008")
    big_queue(toggle, "8008", [IFACE])
    toggle.asterisk.paused.add(("8008", IFACE))
    toggle.asterisk.pause_reasons[("8008", IFACE)] = "qmt-missed"
    run = toggle.call(N, "8008")
    assert (run.state, run.queues, run.get("QMT_IFACE_1")) == ("PAUSED", ["8008"], IFACE)
    # paused and its reason came with the membership: no second question
    assert queue_status_questions(toggle) == [("8008", IFACE)]
    assert not any("QUEUE_MEMBER(" in command for command in run.commands)


def test_a_supervisors_pause_beyond_the_cut_is_not_resumed(toggle):
    toggle.allowlist.add(N, "8008")
    big_queue(toggle, "8008", [IFACE])
    toggle.asterisk.paused.add(("8008", IFACE))
    toggle.asterisk.pause_reasons[("8008", IFACE)] = "lunch"
    assert toggle.call(N, "8008").state == "LOGGEDIN"


def test_the_all_queues_toggle_finds_a_big_queue_among_small_ones(toggle):
    toggle.asterisk.queues["8012"] = []
    for queue in ("8008", "8010", "8012"):
        toggle.allowlist.add(N, queue)
    big_queue(toggle, "8010")
    run = toggle.call(N)
    assert (run.state, sorted(run.queues)) == ("LOGGEDOUT", ["8008", "8010", "8012"])
    toggle.act_as_dialplan(run)
    assert all(toggle.member(queue, N) for queue in ("8008", "8010", "8012"))

    run = toggle.call(N)
    assert (run.state, sorted(run.queues)) == ("LOGGEDIN", ["8008", "8010", "8012"])
    assert [run.get("QMT_IFACE_%d" % i) for i in (1, 2, 3)] == [IFACE] * 3
    toggle.act_as_dialplan(run)
    assert not any(toggle.member(queue, N) for queue in ("8008", "8010", "8012"))


def test_a_member_of_only_the_big_queue_leaves_it_by_the_all_queues_toggle(toggle):
    """A member whose row is gone: the big queue is known from astdb, and
    he is found in it past the cut."""
    big_queue(toggle, "8010", [IFACE])
    run = toggle.call(N)
    assert (run.state, run.queues) == ("LOGGEDIN", ["8010"])


def test_a_member_listed_before_the_cut_needs_no_manager(toggle):
    toggle.allowlist.add(N, "8008")
    toggle.asterisk.queues["8008"] = DESKS[:100] + [IFACE] + DESKS[100:]
    run = toggle.call(N, "8008")
    assert (run.state, run.queues) == ("LOGGEDIN", ["8008"])
    assert queue_status_questions(toggle) == []


def test_a_complete_list_needs_no_manager(toggle):
    toggle.allowlist.add(N, "8008")
    toggle.asterisk.queues["8008"] = DESKS[:200]                   # 3,199 bytes: whole
    assert toggle.call(N, "8008").state == "LOGGEDOUT"
    assert queue_status_questions(toggle) == []


def test_a_list_that_ends_where_asterisk_stops_counts_as_cut(toggle):
    """app_queue stops at 4094 bytes: a list of exactly that length may
    lack members, though shorter than the buffer."""
    toggle.allowlist.add(N, "8008")
    filler = "PJSIP/" + "x" * (4094 - 6)
    toggle.asterisk.queues["8008"] = [filler, IFACE]
    run = toggle.call(N, "8008")
    assert (run.state, run.queues) == ("LOGGEDIN", ["8008"])
    assert queue_status_questions(toggle) == [("8008", IFACE)]


def test_a_cut_last_entry_is_never_taken_for_the_caller(toggle):
    """The cut may end inside a name that begins with the caller's interface."""
    toggle.allowlist.add(N, "8008")
    filler = "PJSIP/" + "x" * (4095 - 7 - len(IFACE))
    toggle.asterisk.queues["8008"] = [filler, IFACE + "-not-his"]
    run = toggle.call(N, "8008")
    assert (run.state, run.queues) == ("LOGGEDOUT", ["8008"])
    assert ("8008", IFACE) in queue_status_questions(toggle)


def test_with_the_manager_down_a_big_queue_grants_nothing_to_anyone(toggle):
    for queue in ("8008", "8010"):
        toggle.allowlist.add(N, queue)
    big_queue(toggle, "8010")
    toggle.configure(extra="\n[ami]\nhost = 127.0.0.1\nport = 1\nusername = qmt\nsecret = s3cret\n")
    for queue in ("8010", None):
        run = toggle.call(N, queue)
        assert (run.state, run.get("QMT_REASON"), run.queues) == ("ERROR", "member_list_too_long", [])
    assert (toggle.asterisk.queues["8008"], toggle.asterisk.queues["8010"]) == ([], DESKS)


def test_mobiles_keep_logging_in_as_the_list_outgrows_the_buffer(toggle):
    """The issue's case: 200 mobiles calling in turn, and from about the
    141st on every login ended in member_list_too_long. Here 130 are in,
    and 20 more log in across the cut."""
    numbers = ["7913%07d" % i for i in range(150)]
    toggle.asterisk.queues["8008"] = [RING_INTERFACE.format(number=number) for number in numbers[:130]]
    for number in numbers[130:]:
        toggle.allowlist.add(number, "8008")
        run = toggle.call(number, "8008")
        assert (run.state, run.get("QMT_REASON")) == ("LOGGEDOUT", "permitted"), number
        toggle.act_as_dialplan(run)
    assert toggle.asterisk.queues["8008"] == [RING_INTERFACE.format(number=number) for number in numbers]
    assert queue_status_questions(toggle), "the list was never cut: the test proves nothing"


# -- what reaches the manager -------------------------------------------------

HOSTILE = ["Local/1@x/n\r\nAction: Originate", "Local/1@x/n\nAction: Logoff", "Local/1@x/n;2", "",
           "Local/1@x/n\x00", "Local/1 @x/n", "L" * 129, "Local/1@x/n:"]


@pytest.mark.parametrize("interface", HOSTILE)
def test_an_unchecked_interface_never_reaches_the_manager(toggle, interface):
    members = AmiMembers(load_settings(toggle.config))
    assert members.member("8008", interface) is None
    assert members.ami is None and toggle.ami.actions == []


@pytest.mark.parametrize("queue", ["8008\r\nAction: Originate", "8008 ", "", "../8008", "q" * 65])
def test_an_unchecked_queue_never_reaches_the_manager(toggle, queue):
    members = AmiMembers(load_settings(toggle.config))
    assert members.member(queue, IFACE) is None
    assert members.ami is None and toggle.ami.actions == []


def test_the_manager_is_asked_once_per_call_after_it_failed(toggle):
    toggle.ami.refuse_login = True
    members = AmiMembers(load_settings(toggle.config))
    assert members.member("8008", IFACE) is None
    assert members.member("8010", IFACE) is None
    assert [action for action, _fields in toggle.ami.actions] == ["Login"]
    assert "refused login" in members.problem


def test_a_static_member_named_like_the_caller_is_not_the_caller():
    """QueueStatus's Member filter also matches a member's NAME."""
    listed = {"8008": [{"Location": "PJSIP/desk-0001", "Name": IFACE, "Paused": "0"}]}
    assert membership_in(listed, "8008", IFACE) is False
    listed["8008"].append({"Location": IFACE.upper(), "Name": N, "Paused": "1", "PausedReason": "qmt-missed"})
    found = membership_in(listed, "8008", IFACE)
    assert (found.interface, found.paused, found.reason) == (IFACE, True, "qmt-missed")


class TurningAway(FakeAmi):
    """A manager over its authlimit: it closes the first `count` new
    connections before its banner, as Asterisk does in a burst."""

    def __init__(self, asterisk, count):
        self.count = count
        super().__init__(asterisk)

    def _session(self, connection):
        if self.count > 0:
            self.count -= 1
            connection.close()
            return
        super()._session(connection)


def test_a_manager_that_turns_new_sessions_away_is_tried_again(toggle):
    big_queue(toggle, "8008", [IFACE])
    busy = TurningAway(toggle.asterisk, 3)
    try:
        toggle.configure(extra=busy.config())
        found = AmiMembers(load_settings(toggle.config)).member("8008", IFACE)
        assert (found.interface, busy.count) == (IFACE, 0)
        busy.count = 10 ** 6                                 # it never takes one: unknown within the bound
        members = AmiMembers(load_settings(toggle.config), timeout=0.5)
        assert members.member("8008", IFACE) is None and "authlimit" in members.problem
    finally:
        busy.close()


def test_a_member_by_both_interfaces_leaves_by_the_ring_paths_first_though_it_is_past_the_cut(toggle):
    toggle.asterisk.queues["8008"] = [OLD_IFACE] + DESKS + [IFACE]
    run = toggle.call(N, "8008")
    assert (run.state, run.get("QMT_IFACE_1")) == ("LOGGEDIN", IFACE)
    assert queue_status_questions(toggle) == [("8008", IFACE)]
