"""The ring path on a real Asterisk: customers call queue 8008 (ringall),
8012 (linear) and 8010; the logged-in mobiles are simulated in the route
stub (pbx/extensions.conf: accept = answers and presses 1, reject = presses 2, silent,
busy, congestion, noanswer). What is checked is what the admin sees:
queue_log lines, member states in QueueStatus, and the prompts played."""

import re
import time

import pytest

from harness.chroot import CHROOT
from harness.logs import prompts, route_leg_prompts, wait_for
from harness.pbx_config import shorten_prompts

A, B = "79115550001", "79115550002"
RING_A, RING_B = f"Local/{A}@qmt-ring/n", f"Local/{B}@qmt-ring/n"
CUSTOMER = "74951110000"
CONF = "/etc/asterisk/queue_mobile_toggle.conf"
# Short rings for the tests; the queues' timeout (40 s) is above
# ring_seconds + answer_wait + the prompts, as the README asks.
TEST_SETTINGS = {"ring_seconds": "4", "answer_wait": "2", "pause_after_missed": "3"}
DEFAULTS = {"callerid": "customer", "announce": ""}          # as the installed config has them


def set_member_settings(pbx, **values):
    """Change [member] keys of the installed config (an admin's edit)."""
    conf = pbx.root.p(CONF)
    text = conf.read_text()
    for key, value in values.items():
        text, found = re.subn(rf"(?m)^{key} *=.*$", f"{key} = {value}", text)
        assert found == 1, f"{key} not in the installed config"
    conf.write_text(text)


@pytest.fixture(scope="module")
def ring_settings(pbx):
    conf = pbx.root.p(CONF)
    before = conf.read_text()
    set_member_settings(pbx, **TEST_SETTINGS)
    yield
    conf.write_text(before)


@pytest.fixture
def ring(clean, ring_settings):
    pbx = clean
    for number in (A, B):
        pbx.ast.mobile(number, None)
        pbx.ast.cli(f"database deltree qmt-ring/{number}")
    yield pbx
    hang_up_everything(pbx)


def hang_up_everything(pbx):
    pbx.ast.cli("channel request hangup all")
    assert pbx.ast.wait_idle(30)


def login(pbx, number, *queues, mode="accept"):
    """Log the mobile in (all-queues code) to these queues, then start this
    test's log and queue_log from here."""
    for queue in queues:
        pbx.allow(number, queue)
    pbx.ast.mobile(number, mode)
    done = pbx.ast.call(number)
    assert (done["QUEUESTAT"], done["AQMSTATUS"]) == ("LOGGEDOUT", "ADDED"), done
    pbx.queue_log_mark = len(pbx.ast.queue_log_lines())
    pbx.log_mark = len(pbx.ast.log_text())
    return done


def new_qlog(pbx):
    return pbx.ast.queue_log_lines()[pbx.queue_log_mark:]


def events(pbx, event, agent=None):
    """queue_log lines of this test with that event (and agent: the member's
    name, which is the number unless the table names it)."""
    found = []
    for line in new_qlog(pbx):
        fields = line.split("|")
        if len(fields) > 4 and fields[4] == event and (agent is None or fields[3] == agent):
            found.append(fields)
    return found


def connected_to(pbx, agent, timeout=30):
    return wait_for(lambda: events(pbx, "CONNECT", agent), timeout, f"CONNECT to {agent}")


def astdb(pbx, number, key):
    """qmt-ring/<number>/<key> from astdb ('' when absent)."""
    m = re.search(r"^Value: (.*)$", pbx.ast.cli(f"database get qmt-ring/{number} {key}"), re.M)
    return m.group(1).strip() if m else ""


def missed(pbx, number):
    return astdb(pbx, number, "missed")


def member_state(pbx, queue, interface):
    for m in pbx.ast.ami.action("QueueStatus", Queue=queue):
        if m.get("Event") == "QueueMember" and m.get("Location") == interface:
            return m
    return None


def login_with(pbx, number, queue, mode, **settings):
    """login() with these [member] settings in force (they travel at login),
    the config put back right after."""
    set_member_settings(pbx, **settings)
    try:
        login(pbx, number, queue, mode=mode)
    finally:
        set_member_settings(pbx, **{key: DEFAULTS[key] for key in settings})


def heard_by_mobile(pbx, number):
    """The sound files played to this mobile (its route channel ;1) in this test."""
    return route_leg_prompts(new_log(pbx), number)


def new_log(pbx):
    return pbx.ast.log_text()[pbx.log_mark:]


def rung(pbx, number):
    """How often the route stub dialled this mobile in this test."""
    return new_log(pbx).count(f"app_verbose.c: QMT_MOBILE_RUNG number={number} ")


def channels_of(pbx, number):
    return [c for c in pbx.ast.channels() if f"Local/{number}@" in c]


# -- answer confirmation ---------------------------------------------------------

def test_a_mobile_that_presses_1_is_connected_and_hears_the_confirmation(ring):
    pbx = ring
    login(pbx, A, "8008", mode="accept")
    customer = pbx.ast.customer("8008", cid=CUSTOMER)
    connected_to(pbx, A)
    log = new_log(pbx)
    assert f"QMT_MOBILE_RUNG number={A} mode=accept cid={CUSTOMER} END" in log   # the customer's number
    assert heard_by_mobile(pbx, A) == ["followme/call-from", "digits/8", "digits/0", "digits/0", "digits/8",
                                       "followme/options"]
    # The customer heard none of it: nothing was played on the customer's channels.
    assert not re.search(rf"Local/{customer}@qmt-customer-stub-\w+;\d> Playing", log)
    assert events(pbx, "RINGNOANSWER", A) == [] and events(pbx, "QMTMISSED") == []
    assert missed(pbx, A) == "0"


@pytest.mark.parametrize("mode, event, info", [("silent", "QMTNOCONFIRM", "TIMEOUT"), ("reject", "QMTREJECT", "2")])
def test_a_silent_or_rejecting_mobile_is_not_connected_and_the_next_member_is_rung(ring, mode, event, info):
    pbx = ring
    login(pbx, A, "8012", mode=mode)          # linear: A first
    login(pbx, B, "8012", mode="accept")
    pbx.ast.customer("8012", cid=CUSTOMER)
    connect = connected_to(pbx, B)
    assert events(pbx, "CONNECT", A) == []
    call_id = connect[0][1]
    assert [f[5:] for f in events(pbx, event, A)] == [[info]]
    assert [f[1] for f in events(pbx, event, A)] == [call_id]          # the customer's call
    assert [f[5:7] for f in events(pbx, "QMTMISSED", A)] == [["CONGESTION", "1"]]
    assert len(events(pbx, "RINGNOANSWER", A)) == 1
    assert missed(pbx, A) == "1" and missed(pbx, B) == "0"


def test_confirmation_turned_off_for_a_number_connects_on_answer_without_a_prompt(ring):
    pbx = ring
    pbx.allow(A, "8008")
    pbx.sql("UPDATE queue_mobile_agents SET confirm_answer = 0 WHERE number = ?", (A,))
    login(pbx, A, mode="silent")               # answers, never presses a key
    pbx.ast.customer("8008")
    connected_to(pbx, A)
    assert astdb(pbx, A, "confirm") == "0"
    assert "followme/" not in new_log(pbx)


# -- missed calls and ring faults -------------------------------------------------

def wait_paused(pbx, queue, interface, timeout=40):
    return wait_for(lambda: (member_state(pbx, queue, interface) or {}).get("Paused") == "1", timeout,
                    f"{interface} paused in {queue}")


def customer_calls(pbx, queue, count, wait, until):
    """`count` customers one after another, each waiting `wait` seconds;
    the next calls once `until(n)` holds for the n customers so far."""
    for n in range(1, count + 1):
        pbx.ast.customer(queue, cid=f"7495111000{n}", wait=wait)
        wait_for(lambda: until(n), wait + 15, f"customer {n}'s ring outcome")
        wait_for(lambda: len(events(pbx, "ABANDON")) >= n, wait + 15, f"customer {n} hanging up")


@pytest.mark.parametrize("mode", ["busy", "noanswer", "silent"])
def test_three_customer_calls_missed_pause_the_member_in_every_queue(ring, mode):
    pbx = ring
    login(pbx, A, "8008", "8010", mode=mode)
    customer_calls(pbx, "8008", 3, wait=8, until=lambda n: len(events(pbx, "QMTMISSED", A)) >= n)
    wait_paused(pbx, "8008", RING_A)
    for queue in ("8008", "8010"):
        state = member_state(pbx, queue, RING_A)
        assert (state["Paused"], state["PausedReason"]) == ("1", "qmt-missed"), state
    counted = [f[5:7] for f in events(pbx, "QMTMISSED", A) if f[7:8] != ["same_call"]]
    assert counted == [[{"busy": "BUSY", "noanswer": "NOANSWER"}.get(mode, "CONGESTION"), str(n)] for n in (1, 2, 3)]
    assert len({f[1] for f in events(pbx, "QMTMISSED", A)}) == 3      # three customers' calls
    assert len(events(pbx, "PAUSEALL", A)) == 1
    assert [f[5] for f in events(pbx, "PAUSE", A)] == ["qmt-missed", "qmt-missed"]
    assert "qmt-missed" in pbx.ast.cli("queue show 8008")
    assert missed(pbx, A) == "0"          # counted afresh after the pause
    assert events(pbx, "QMTRINGFAULT", A) == []


def test_one_customer_call_counts_one_miss_however_often_it_rings_the_mobile(ring):
    pbx = ring
    login(pbx, A, "8008", mode="busy")
    pbx.ast.customer("8008", wait=8)      # retry = 1: the queue rings the busy mobile again and again
    wait_for(lambda: len(events(pbx, "QMTMISSED", A)) >= 3, 15, "three rings of one customer call")
    lines = events(pbx, "QMTMISSED", A)
    assert [f[5:7] for f in lines][:3] == [["BUSY", "1"]] * 3
    assert [f[7:8] for f in lines][1:3] == [["same_call"]] * 2
    assert missed(pbx, A) == "1"
    assert member_state(pbx, "8008", RING_A)["Paused"] == "0"


@pytest.mark.parametrize("mode, cause", [("congestion", "CONGESTION"), ("no-trunk", "CONGESTION"),
                                         ("trunk-disabled", "NOANSWER"), ("pbx-answers", "PBXANSWER")])
def test_a_ring_that_fails_inside_the_pbx_is_logged_and_never_pauses(ring, mode, cause):
    """No route, a trunk down or full, a carrier's refusal: the ring ends
    before the mobile could ring or answer. Not the agent's miss."""
    pbx = ring
    login(pbx, A, "8008", "8010", mode=mode)
    customer_calls(pbx, "8008", 3, wait=5, until=lambda n: len(events(pbx, "QMTRINGFAULT", A)) >= n)
    faults = events(pbx, "QMTRINGFAULT", A)
    assert {f[5] for f in faults} == {cause}
    assert len({f[1] for f in faults}) == 3
    assert events(pbx, "QMTMISSED", A) == [] and missed(pbx, A) in ("", "0")
    assert member_state(pbx, "8008", RING_A)["Paused"] == "0"
    assert member_state(pbx, "8010", RING_A)["Paused"] == "0"
    assert astdb(pbx, A, "fault").split("|")[1] == cause
    assert f"queue-mobile-toggle: ring of {A} failed before the mobile could answer ({cause}" in new_log(pbx)
    assert events(pbx, "CONNECT", A) == []


def test_a_mobile_leg_gone_at_once_after_answering_is_never_connected(ring):
    """The leg may be gone before the confirmation runs its first line:
    app_dial would connect it unless the leg was born refusing."""
    pbx = ring
    login(pbx, A, "8008", mode="answer-hangup")
    pbx.ast.customer("8008", wait=8)
    wait_for(lambda: rung(pbx, A) >= 4, 15, "four rings of the mobile")
    assert events(pbx, "CONNECT", A) == [] and events(pbx, "COMPLETEAGENT", A) == []


def test_an_accepted_call_resets_the_count(ring):
    pbx = ring
    login(pbx, A, "8008", mode="reject")
    customer_calls(pbx, "8008", 2, wait=6, until=lambda n: missed(pbx, A) == str(n))
    pbx.ast.mobile(A, "accept")
    pbx.ast.customer("8008")
    connected_to(pbx, A)
    assert missed(pbx, A) == "0"
    state = member_state(pbx, "8008", RING_A)
    assert state["Paused"] == "0"
    assert [f[6] for f in events(pbx, "QMTMISSED", A) if f[7:8] != ["same_call"]] == ["1", "2"]


@pytest.fixture
def real_prompts(ring):
    """Asterisk's own confirmation prompts (call-from 1.7 s, the digits,
    options 3.6 s) for this test, shortened again afterwards."""
    pbx = ring
    sounds = pbx.root.sh("readlink -f /usr/share/asterisk/sounds/en", check=True).stdout.strip()
    names = ["followme/call-from", "followme/options"] + [f"digits/{d}" for d in range(10)]
    for name in names:
        pbx.root.p(f"{sounds}/{name}.gsm").write_bytes(CHROOT.joinpath(sounds.lstrip("/"), f"{name}.gsm")
                                                     .read_bytes())
    yield pbx
    shorten_prompts(pbx.root)


def gone_after(pbx, number, start, limit=10):
    """Seconds from `start` (time.monotonic()) until no channel of this mobile is left."""
    wait_for(lambda: channels_of(pbx, number) == [], limit, f"{number}'s channels gone")
    return time.monotonic() - start


def test_the_losing_mobile_of_a_race_stops_hearing_the_real_prompt_within_a_second(real_prompts):
    pbx = real_prompts
    login(pbx, A, "8008", mode="accept")       # presses 1 two seconds after answering
    login(pbx, B, "8008", mode="silent")       # answers, would hear the whole prompt
    pbx.ast.customer("8008")
    connected_to(pbx, A, timeout=30)
    assert gone_after(pbx, B, time.monotonic()) < 1.2
    assert events(pbx, "QMTMISSED", B) == [] and events(pbx, "QMTNOCONFIRM", B) == []
    assert missed(pbx, B) in ("", "0")


def test_a_customer_hanging_up_during_the_real_prompt_stops_it_within_a_second(real_prompts):
    pbx = real_prompts
    login(pbx, A, "8008", mode="silent")
    pbx.ast.customer("8008", wait=3)           # the prompt takes 8.5 s
    wait_for(lambda: events(pbx, "ABANDON"), 10, "the customer's ABANDON")
    assert gone_after(pbx, A, time.monotonic()) < 1.2
    assert events(pbx, "QMTMISSED", A) == [] and missed(pbx, A) in ("", "0")


def test_a_customer_who_hangs_up_while_the_mobile_rings_is_not_a_miss(ring):
    pbx = ring
    login(pbx, A, "8008", mode="noanswer")
    pbx.ast.customer("8008", wait=2)
    wait_for(lambda: events(pbx, "ABANDON"), 10, "the customer's ABANDON")
    assert pbx.ast.wait_idle(10)
    assert events(pbx, "QMTMISSED", A) == [] and missed(pbx, A) == "0"


# -- back on duty, busy, old members ---------------------------------------------------

def test_a_paused_mobile_calling_the_code_is_resumed_then_the_next_call_logs_it_out(ring):
    pbx = ring
    login(pbx, A, "8008", "8010")
    for queue in ("8008", "8010"):
        pbx.ast.ami.action("QueuePause", Queue=queue, Interface=RING_A, Paused="true", Reason="qmt-missed")
    done = pbx.ast.call(A)
    assert (done["QUEUESTAT"], done["QMT_COUNT"]) == ("PAUSED", "2"), done
    assert "agent-loginok" in " ".join(prompts(done["_log"]))
    for queue in ("8008", "8010"):
        assert member_state(pbx, queue, RING_A)["Paused"] == "0"
    assert sorted(f[2] for f in events(pbx, "UNPAUSE", A)) == ["8008", "8010"]
    done = pbx.ast.call(A)
    assert (done["QUEUESTAT"], done["RQMSTATUS"]) == ("LOGGEDIN", "REMOVED"), done
    assert all(member_state(pbx, q, RING_A) is None for q in ("8008", "8010"))


def test_a_mobile_on_a_queue_call_is_not_rung_by_another_queue(ring):
    pbx = ring
    login(pbx, A, "8008", "8010", mode="accept")
    pbx.ast.customer("8008", wait=30)
    connected_to(pbx, A)
    pbx.ast.customer("8010", wait=6)
    wait_for(lambda: events(pbx, "ABANDON"), 15, "the second customer giving up")
    assert rung(pbx, A) == 1
    assert events(pbx, "QMTMISSED", A) == []


def test_a_mobile_being_rung_by_one_queue_is_not_rung_by_another_at_once(ring):
    pbx = ring
    login(pbx, A, "8008", "8010", mode="noanswer")
    pbx.ast.customer("8008", wait=8)
    wait_for(lambda: rung(pbx, A) == 1, 10, "the first ring")
    pbx.ast.customer("8010", wait=8)
    time.sleep(2)                          # the first ring still goes on (ring_seconds = 4)
    assert rung(pbx, A) == 1
    assert len(channels_of(pbx, A)) == 6   # one ring: three Local pairs (the simulated mobile is one)


def test_two_customers_at_once_reach_two_mobiles(ring):
    pbx = ring
    login(pbx, A, "8008", mode="accept")
    login(pbx, B, "8008", mode="accept")
    pbx.ast.customer("8008", cid="74951110001")
    pbx.ast.customer("8008", cid="74951110002")
    wait_for(lambda: len(events(pbx, "CONNECT")) == 2, 30, "two CONNECTs")
    connects = events(pbx, "CONNECT")
    assert sorted(f[3] for f in connects) == [A, B]
    assert len({f[1] for f in connects}) == 2            # two customers
    assert events(pbx, "QMTMISSED") == []


def test_a_mobile_logged_in_under_the_old_interface_logs_out_with_one_call(ring):
    pbx = ring
    old = f"Local/{A}@outbound-allroutes/n"
    pbx.allow(A, "8008")
    for queue in ("8008", "8010"):
        assert pbx.ast.ami.action("QueueAdd", Queue=queue, Interface=old)[0]["Response"] == "Success"
    done = pbx.ast.call(A)
    assert (done["QUEUESTAT"], done["QMT_COUNT"], done["RQMSTATUS"]) == ("LOGGEDIN", "2", "REMOVED"), done
    assert pbx.ast.member_list("8008") == [] and pbx.ast.member_list("8010") == []
    done = pbx.ast.call(A)                  # and the next call logs in by the ring path
    assert done["QUEUESTAT"] == "LOGGEDOUT" and pbx.ast.member_list("8008") == [RING_A]


def test_a_fixed_caller_id_is_what_the_mobile_sees(ring):
    pbx = ring
    login_with(pbx, A, "8008", "accept", callerid="74957654321")
    pbx.ast.customer("8008", cid=CUSTOMER)
    connected_to(pbx, A)
    assert f"QMT_MOBILE_RUNG number={A} mode=accept cid=74957654321 END" in new_log(pbx)


def test_the_admins_recording_replaces_call_from_and_the_queue_number(ring):
    pbx = ring
    login_with(pbx, A, "8008", "accept", announce="beep")
    pbx.ast.customer("8008")
    connected_to(pbx, A)
    assert heard_by_mobile(pbx, A) == ["beep", "followme/options"]
