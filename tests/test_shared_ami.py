"""`qmt serve`'s one manager connection for all its calls (qmt.ami.SharedAmi):
many threads ask at once on one login, each gets its own action's answer
(by ActionID, whatever the order the answers come in), an answer that
never comes costs only its own caller, a dropped connection is reopened
by the next question, and a refused login fails closed without a flood.
Against the fake manager over TCP (tests/fake_ami.py), and at the end a
burst of calls into a big queue over FastAGI."""

import threading

import pytest

from qmt.ami import AmiMembers, SharedAmi
from qmt.config import load_settings
from test_fastagi import calls_in_parallel, served  # noqa: F401  (served: the fixture)

QUEUE = "8008"
THREADS = 30
DESKS = ["PJSIP/desk-%04d" % i for i in range(1000)]  # static members: the list is cut


def mobile(index):
    return "Local/791100%05d@qmt-ring/n" % index


@pytest.fixture
def shared(toggle):
    """A SharedAmi on the fake manager, with every member of QUEUE paused
    for a reason of his own; its reports in `shared.reports`."""
    toggle.configure(timeout=1)                     # the manager's bound: 2 s
    toggle.asterisk.queues[QUEUE] = [mobile(index) for index in range(THREADS)]
    for index in range(THREADS):
        toggle.asterisk.paused.add((QUEUE, mobile(index)))
        toggle.asterisk.pause_reasons[(QUEUE, mobile(index))] = "reason-%d" % index
    reports = []
    manager = SharedAmi(load_settings(toggle.config), reports.append)
    manager.reports, manager.fake, manager.settings_file = reports, toggle.ami, toggle.config
    yield manager
    manager.close()


def ask_at_once(manager, indexes):
    """{index: (answer, problem)} of one call's question per index, all at once."""
    answers = {}

    def ask(index):
        members = AmiMembers(load_settings(manager.settings_file), shared=manager)
        answers[index] = (members.member(QUEUE, mobile(index)), members.problem)
        members.close()

    threads = [threading.Thread(target=ask, args=(index,)) for index in indexes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def reason_of(answer):
    return answer[0].reason if answer[0] else None


def test_many_callers_at_once_each_get_their_own_answer_on_one_login(shared):
    """The even members' answers are held until every odd member's was
    sent: only answers matched by ActionID, not by order, get them right."""
    odd_answered, count = threading.Event(), [0]
    lock = threading.Lock()

    def evens_after_odds(fields):
        index = int(fields["Member"].split("@")[0][-5:])
        if index % 2:
            with lock:
                count[0] += 1
                if count[0] == THREADS // 2:
                    odd_answered.set()
            return True
        return odd_answered.wait(10)

    shared.fake.hold = evens_after_odds
    answers = ask_at_once(shared, range(THREADS))
    assert {index: reason_of(answer) for index, answer in answers.items()} == \
        {index: "reason-%d" % index for index in range(THREADS)}
    assert (shared.fake.connections, shared.fake.logins()) == (1, 1)
    assert shared.reports == []


def test_an_answer_that_never_comes_fails_only_its_caller_within_the_bound(shared):
    shared.fake.hold = lambda fields: fields["Member"] != mobile(7)
    answers = ask_at_once(shared, range(THREADS))
    assert answers[7][0] is None and "did not answer QueueStatus in time" in answers[7][1]
    assert all(reason_of(answers[index]) == "reason-%d" % index for index in range(THREADS) if index != 7)
    shared.fake.hold = None
    assert reason_of(ask_at_once(shared, [7])[7]) == "reason-7"         # the same connection still serves
    assert shared.fake.connections == 1


def test_a_dropped_connection_fails_the_waiting_callers_and_the_next_question_reopens_it(shared):
    assert reason_of(ask_at_once(shared, [1])[1]) == "reason-1"

    def drop_instead(_fields):
        shared.fake.drop_connections()
        return False

    shared.fake.hold = drop_instead
    lost = ask_at_once(shared, [2])[2]
    assert lost[0] is None and "closed the connection" in lost[1]
    shared.fake.hold = None
    assert reason_of(ask_at_once(shared, [3])[3]) == "reason-3"
    assert (shared.fake.connections, shared.fake.logins()) == (2, 2)
    assert len(shared.reports) == 1 and "the connection ended" in shared.reports[0]


def test_a_refused_login_fails_every_caller_closed_with_one_attempt_and_one_report(shared):
    shared.fake.refuse_login = True
    shared.RETRY_SECONDS = 3600                     # no second attempt within this test
    answers = ask_at_once(shared, range(THREADS))
    assert all(answer[0] is None and "refused login" in answer[1] for answer in answers.values())
    assert shared.fake.logins() == 1
    assert len(shared.reports) == 1
    assert shared.reports[0].startswith("cannot log in: ") and "refused login" in shared.reports[0]


def test_after_a_refused_login_the_next_question_past_the_pause_logs_in_again(shared):
    shared.fake.refuse_login = True
    assert ask_at_once(shared, [1])[1][0] is None
    shared.fake.refuse_login, shared.RETRY_SECONDS = False, 0
    assert reason_of(ask_at_once(shared, [1])[1]) == "reason-1"
    assert shared.fake.logins() == 2


def test_a_closed_shared_connection_answers_nothing(shared):
    assert reason_of(ask_at_once(shared, [1])[1]) == "reason-1"
    shared.close()
    closed = ask_at_once(shared, [1])[1]
    assert closed[0] is None and "closed" in closed[1]
    assert shared.fake.connections == 1


def test_a_calls_own_members_view_leaves_the_shared_connection_open(shared):
    members = AmiMembers(load_settings(shared.settings_file), shared=shared)
    assert members.member(QUEUE, mobile(4)).reason == "reason-4"
    members.close()
    assert reason_of(ask_at_once(shared, [5])[5]) == "reason-5"
    assert shared.fake.connections == 1


def test_a_burst_of_calls_into_a_big_queue_over_fastagi_logs_in_to_the_manager_once(served):  # noqa: F811
    """Every call finds the caller past the cut (the manager asked on the
    server's one connection) and decides LOGGEDIN: a logout."""
    number = "79112223344"
    interface = "Local/%s@qmt-ring/n" % number
    served.asterisk.queues[QUEUE] = DESKS + [interface]
    served.servers.server_for(served.env)           # one server, started before the burst
    runs = calls_in_parallel(served, THREADS, number, QUEUE, DESKS + [interface])
    assert [(run.state, run.get("QMT_IFACE_1")) for run in runs] == [("LOGGEDIN", interface)] * THREADS
    asked = [fields.get("Member") for action, fields in served.ami.actions if action == "QueueStatus"]
    assert asked == [interface] * THREADS
    assert (served.ami.connections, served.ami.logins()) == (1, 1)
    assert len([line for line in served.log_lines() if "state=LOGGEDIN" in line]) == THREADS
