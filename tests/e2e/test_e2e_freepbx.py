"""The product on a FreePBX-17-shaped dialplan with real SIP (issue 15).

One Asterisk 22 (the e2e chroot's) runs FreePBX 17's dialplan as its
generator writes it (freepbx_pbx/: inbound routes, ext-queues with Call
Confirm, the outbound route with macro-user-callerid, macro-dialout-trunk,
macro-outbound-callerid, macro-confirm, macro-outisbusy as Gosub
subroutines), a PJSIP trunk on 127.0.0.2, and at the trunk's far end
(127.0.0.3) the carrier and the mobiles, over real SIP with RFC 4733 DTMF.
queue-mobile-toggle is installed by its own install.sh in FreePBX mode.

Customers are SIP calls from the far side into from-pstn -> a DID -> the
queue; mobiles log in by calling the DID of the Custom Destination
app-queue-toggle-mob,s,1. What is checked: the caller number each INVITE
to a mobile carries, the prompts the PBX played, queue_log lines, member
states, and (timing) the full log's timestamps. The prompts are Asterisk's
real recordings, not the harness's shortened ones.
"""

import os
import re
import time

import pytest

import freepbx as F
from harness.host import SetupError
from harness.logs import prompts, wait_for
from qmt.pin import hash_pin

A, B, C = "79115550001", "79115550002", "79115550003"
NOROUTE = "380441234567"            # a valid number no outbound route matches
PIN_NUMBER, PIN = "79115550004", "2468"
CUSTOMER = "74951110001"
FIXED_CID = "74957777777"
LOGS = os.path.join(os.environ.get("QMT_E2E_LOGS", "/tmp/qmt-e2e-logs"), "freepbx")
OUR_PROMPT = ["followme/call-from", "digits/8", "digits/0", "digits/0", "digits/9", "followme/options"]
CUT_WITHIN = 1.5        # seconds: "within about 1 s", plus the SIP BYE's way to the far side


def ring(number):
    return f"Local/{number}@qmt-ring/n"


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def fpbx(base_chroot, wheelhouse):
    """The FreePBX-shaped PBX, installed, with A (8008, 8009, 8010) and
    B (8008) logged in over SIP."""
    pbx = F.FreePBX(base_chroot, wheelhouse)
    try:
        try:
            pbx.start()
        except SetupError as e:
            pytest.fail(str(e), pytrace=False)
        for queue in ("8008", "8009", "8010"):
            pbx.allow(A, queue)
        pbx.allow(B, "8008")
        done = sip_login(pbx, A, B)
        for number in (A, B):
            assert (done[number]["state"], done[number]["action"]) == ("LOGGEDOUT", "login"), done[number]
        assert sorted(pbx.ast.member_list("8008")) == [ring(A), ring(B)]
        yield pbx
    finally:
        pbx.stop(keep_logs_in=LOGS)


@pytest.fixture
def fresh(fpbx):
    """No call up, the trunk as generated, every mobile silent, nobody
    paused, no miss or fault counted; the logs of this test start here."""
    pbx = fpbx
    hang_up_everything(pbx)
    pbx.set_trunk()
    for number in (A, B, C, NOROUTE, PIN_NUMBER):
        pbx.mobile(number, None)
    for number in (A, B):
        pbx.ast.ami.action("QueuePause", Interface=ring(number), Paused="false")
        pbx.ast.cli(f"database put qmt-ring/{number} missed 0")
        for key in ("fault", "missed_call"):
            pbx.ast.cli(f"database del qmt-ring/{number} {key}")
    pbx.mark()
    yield pbx
    hang_up_everything(pbx)


def hang_up_everything(pbx):
    pbx.ast.cli("channel request hangup all")
    assert pbx.ast.wait_idle(30), f"calls still up: {pbx.ast.channels()}"


# ------------------------------------------------------------------ helpers
def sip_login(pbx, *numbers, keys=None):
    """Each number calls the toggle's DID over the trunk (keying `keys`, if
    given, as RFC 4733); returns {number: its decision line, with the
    prompts the PBX played on that call under '_prompts'}."""
    pbx.mark()
    tags = {number: pbx.far_call(F.DID_TOGGLE, number, wait=40, keys=keys) for number in numbers}
    done = {}
    for number, tag in tags.items():
        decision = pbx.decision(number, timeout=40)
        pbx.caller_gone(tag, timeout=60)
        channel = decision["channel"]
        decision["_prompts"] = prompts([line for line in pbx.new_log().splitlines() if f"<{channel}>" in line])
        done[number] = decision
    return done


def remove_member(pbx, number, *queues):
    for queue in queues:
        pbx.ast.ami.action("QueueRemove", Queue=queue, Interface=ring(number))
    pbx.ast.cli(f"database deltree qmt-ring/{number}")
    pbx.sql("DELETE FROM queue_mobile_agents WHERE number = ?", (number,))


def connected(pbx, agent, timeout=30):
    return wait_for(lambda: pbx.events("CONNECT", agent), timeout, f"CONNECT to {agent}")


def connect_time(pbx, agent):
    """When app_queue bridged the member (its 'answered' line)."""
    line = pbx.wait_line(rf"Local/{agent}@qmt-ring-\w+;1 answered ", 5)
    return F.stamp(line)


def paused(pbx, queue, number):
    state = pbx.member_state(queue, ring(number)) or {}
    return state.get("Paused") == "1"


def call_ids(pbx, number, *events):
    return {f[1] for event in events for f in pbx.events(event, number)}


def three_customer_calls(pbx, number, queue="8010"):
    """Three separate customer calls (one customer call counts at most one
    miss per mobile); each ends once the ring path logged its outcome."""
    for i in range(1, 4):
        if paused(pbx, queue, number):
            break
        tag = pbx.customer(queue, cid=f"7495111000{i}", wait=60)
        wait_for(lambda: len(call_ids(pbx, number, "QMTMISSED", "QMTRINGFAULT")) >= i or paused(pbx, queue, number),
                 40, f"the outcome of customer call {i} ringing {number}")
        pbx.hang_up(tag)
        pbx.caller_gone(tag)
        wait_for(lambda: not [c for c in pbx.ast.channels() if f"/{number}@" in c], 15, f"{number}'s ring ended")


def keepcid_on_route(pbx, number):
    """KEEPCID as FreePBX's macro-outbound-callerid saw it on the mobile's
    route channel (its second line is NoOp(${KEEPCID})), one per ring."""
    return re.findall(rf'Executing \[s@macro-outbound-callerid:2\] NoOp\("Local/{number}@outbound-allroutes-\w+;2", '
                      r'"([^"]*)"\)', pbx.new_log())


def executed_freepbx_confirm(pbx):
    return re.findall(r"Executing \[\w+@macro-confirm:\d+\]", pbx.new_log())


# ------------------------------------------------------------------ the tests
def test_installed_as_on_freepbx(fpbx):
    """install.sh saw FreePBX (/etc/freepbx.conf): its #include went to
    extensions_custom.conf, the qmt manager account to manager_custom.conf,
    and the ring path dials FreePBX's outbound routes."""
    etc = fpbx.root.p("/etc/asterisk")
    include = "#include extensions_queue_mobile_toggle.conf"
    assert include in (etc / "extensions_custom.conf").read_text().splitlines()
    assert include not in (etc / "extensions.conf").read_text()
    assert "[qmt]" in (etc / "manager_custom.conf").read_text()
    assert fpbx.config_value("route") == "outbound-allroutes"
    assert fpbx.astdb(A, "route") == "outbound-allroutes"
    assert "app-queue-toggle-mob" in fpbx.ast.cli("dialplan show customdests")


def test_an_accepted_ring_connects_and_the_mobile_sees_the_customers_number(fresh):
    pbx = fresh
    pbx.mobile(A, "accept")
    tag = pbx.customer("8010", cid=CUSTOMER)
    connected(pbx, A)
    invite = pbx.invites(A)[0]
    assert invite["cid"] == CUSTOMER and f"<sip:{CUSTOMER}@" in invite["from"], invite
    assert keepcid_on_route(pbx, A) == ["TRUE"]
    heard = pbx.heard_by_mobile(A)
    assert heard and heard[0] == "followme/call-from" and set(heard) <= {"followme/call-from", "followme/options",
                                                                        "digits/8", "digits/0", "digits/1"}, heard
    assert pbx.events("QMTMISSED", A) == [] and pbx.events("QMTRINGFAULT", A) == []
    assert executed_freepbx_confirm(pbx) == []
    assert pbx.astdb(A, "missed") == "0"
    pbx.hang_up(tag)


def test_a_fixed_callerid_in_the_config_is_what_the_mobile_sees(fresh):
    """[member] callerid = 74957777777 (an admin's edit, kept by install.sh)
    travels in astdb from the login; FreePBX's route keeps it (KEEPCID)."""
    pbx = fresh
    pbx.allow(C, "8008")
    pbx.set_config(callerid=FIXED_CID)
    try:
        done = sip_login(pbx, C)[C]
    finally:
        pbx.set_config(callerid="customer")
    try:
        assert done["action"] == "login" and pbx.astdb(C, "callerid") == FIXED_CID, done
        pbx.mark()
        pbx.mobile(A, "noanswer")
        pbx.mobile(B, "noanswer")
        pbx.mobile(C, "accept")
        tag = pbx.customer("8008", cid=CUSTOMER)
        connected(pbx, C)
        assert [i["cid"] for i in pbx.invites(C)] == [FIXED_CID], pbx.invites(C)
        assert f"<sip:{FIXED_CID}@" in pbx.invites(C)[0]["from"]
        assert [i["cid"] for i in pbx.invites(A)] == [CUSTOMER]      # the others: the customer's
        assert pbx.events("QMTMISSED") == []                          # A's and B's rings were cancelled
        pbx.hang_up(tag)
    finally:
        remove_member(pbx, C, "8008")


@pytest.mark.parametrize("keepcid", ["on", "all"])
def test_block_foreign_or_force_trunk_cid_shows_the_trunks_number(fresh, keepcid):
    """The trunk's "Block Foreign CIDs" (on) and "Force Trunk CID" (all) are
    the admin's choice: the mobile then sees the trunk's Outbound CallerID."""
    pbx = fresh
    pbx.set_trunk(keepcid=keepcid)
    pbx.mobile(A, "accept")
    tag = pbx.customer("8010", cid=CUSTOMER)
    connected(pbx, A)
    assert [i["cid"] for i in pbx.invites(A)] == [F.TRUNK_CID], pbx.invites(A)
    pbx.hang_up(tag)


def test_a_withheld_customer_number_shows_the_trunks_callerid(fresh):
    pbx = fresh
    pbx.mobile(A, "accept")
    tag = pbx.customer("8010", cid=CUSTOMER, pres="prohib")
    connected(pbx, A)
    invite = pbx.invites(A)[0]
    assert invite["cid"] == F.TRUNK_CID and f"<sip:{F.TRUNK_CID}@" in invite["from"], invite
    assert CUSTOMER not in invite["from"]
    assert keepcid_on_route(pbx, A) == [""]          # nothing to keep: the route does as for any call
    pbx.hang_up(tag)


def test_call_confirm_on_the_queue_plays_only_our_prompt_and_one_1_connects(fresh):
    """Queue 8009 has FreePBX's Call Confirm (__FORCE_CONFIRM): its
    macro-confirm never runs on our member's trunk leg."""
    pbx = fresh
    pbx.mobile(A, "accept-late")          # keys 1 once, after the whole prompt
    tag = pbx.customer("8009", cid=CUSTOMER)
    connected(pbx, A, timeout=40)
    assert pbx.heard_by_mobile(A) == OUR_PROMPT
    assert executed_freepbx_confirm(pbx) == []
    assert "incoming-call-1-accept-2-decline" not in pbx.new_log()
    pbx.wait_line(r"app_verbose\.c: QMT_FAR_KEYED key=1 END", 5)
    assert pbx.new_log().count("app_verbose.c: QMT_FAR_KEYED key=1 END") == 1    # one 1, and it was ours
    assert [i["cid"] for i in pbx.invites(A)] == [CUSTOMER]
    pbx.hang_up(tag)


def test_a_silent_answer_is_no_connect_but_a_miss(fresh):
    pbx = fresh
    pbx.mobile(A, "silent")               # a mailbox: answers, never keys
    tag = pbx.customer("8010", cid=CUSTOMER)
    missed = wait_for(lambda: pbx.events("QMTMISSED", A), 40, "QMTMISSED")
    assert [f[5:] for f in pbx.events("QMTNOCONFIRM", A)] == [["TIMEOUT"]]
    assert missed[0][5:7] == ["CONGESTION", "1"]
    assert pbx.events("CONNECT") == []
    assert pbx.heard_by_mobile(A)[:2] == ["followme/call-from", "digits/8"]
    assert pbx.astdb(A, "missed") == "1"
    assert not paused(pbx, "8010", A)
    pbx.hang_up(tag)


def test_busy_on_three_customer_calls_pauses_the_member(fresh):
    pbx = fresh
    pbx.mobile(A, "busy")
    three_customer_calls(pbx, A)
    assert "SIP/2.0 486 Busy Here" in pbx.new_log()          # what the carrier answered
    counted = [f for f in pbx.events("QMTMISSED", A) if "same_call" not in f[5:]]
    assert [f[5:7] for f in counted] == [["BUSY", "1"], ["BUSY", "2"], ["BUSY", "3"]]
    assert len({f[1] for f in counted}) == 3                  # three customer calls
    for queue in ("8008", "8009", "8010"):
        state = pbx.member_state(queue, ring(A))
        assert (state["Paused"], state["PausedReason"]) == ("1", "qmt-missed"), state
    assert "qmt-missed" in pbx.ast.cli("queue show 8010")
    assert pbx.events("QMTRINGFAULT", A) == []


@pytest.mark.parametrize("case", ["forbidden", "trunk_disabled", "trunk_full", "no_route"])
def test_a_ring_fault_on_three_customer_calls_pauses_nobody(fresh, case):
    """403 from the carrier (FreePBX then plays all-circuits-busy, answering
    the route's channel inside the PBX), a disabled or full trunk (FreePBX
    17's route ends at once: "Maximum Channels" 0 is always full), a number no route matches (a member whose route
    went away after login: added as the login would have): faults of the
    PBX or the carrier, logged, never the agent's misses."""
    pbx = fresh
    number = A
    if case == "forbidden":
        pbx.mobile(A, "forbidden")
    elif case == "trunk_disabled":
        pbx.set_trunk(disabled="on")
        pbx.mobile(A, "accept")
    elif case == "trunk_full":
        pbx.set_trunk(maxchans="0")
        pbx.mobile(A, "accept")
    else:
        number = NOROUTE
        pbx.ast.ami.action("QueuePause", Queue="8010", Interface=ring(A), Paused="true", Reason="e2e-hold")
        r = pbx.ast.ami.action("QueueAdd", Queue="8010", Interface=ring(NOROUTE), MemberName=NOROUTE)
        assert r[0]["Response"] == "Success", r
    try:
        three_customer_calls(pbx, number)
        faults = pbx.events("QMTRINGFAULT", number)
        assert len({f[1] for f in faults}) == 3, pbx.qlog()
        assert pbx.events("QMTMISSED", number) == [] and pbx.events("QMTNOCONFIRM", number) == []
        assert not paused(pbx, "8010", number)
        assert pbx.events("PAUSE", number) == [] and pbx.events("PAUSEALL", number) == []
        assert pbx.astdb(number, "fault") != ""
        causes = {f[5] for f in faults}
        if case == "forbidden":
            assert "SIP/2.0 403 Forbidden" in pbx.new_log()
            assert causes == {"PBXANSWER"}, faults
            assert "all-circuits-busy-now" in pbx.new_log()        # FreePBX's macro-outisbusy answered
        elif case in ("trunk_disabled", "trunk_full"):
            assert pbx.invites() == []                              # nothing reached the carrier
            assert ("DISABLED" if case == "trunk_disabled" else "max channels used up") in pbx.new_log()
            assert "PBXANSWER" not in causes and causes, faults
        else:
            assert pbx.invites() == []
            assert causes == {"CHANUNAVAIL"}, faults
    finally:
        if case == "no_route":
            pbx.ast.ami.action("QueueRemove", Queue="8010", Interface=ring(NOROUTE))
            pbx.ast.cli(f"database deltree qmt-ring/{NOROUTE}")
            pbx.ast.ami.action("QueuePause", Queue="8010", Interface=ring(A), Paused="false")


def test_a_login_of_a_number_no_route_can_dial_is_refused(fresh):
    pbx = fresh
    pbx.allow(NOROUTE, "8010")
    try:
        done = sip_login(pbx, NOROUTE)[NOROUTE]
        assert done["reason"] == "no_route", done
        assert done["_prompts"] == ["sorry-youre-having-problems"], done["_prompts"]
        assert ring(NOROUTE) not in pbx.ast.member_list("8010")
        assert pbx.events("ADDMEMBER") == []
    finally:
        remove_member(pbx, NOROUTE, "8010")


def test_a_pin_keyed_as_rfc4733_on_an_inbound_sip_call_logs_in(fresh):
    pbx = fresh
    pbx.allow(PIN_NUMBER, "8010", pin_hash=hash_pin(PIN))
    try:
        done = sip_login(pbx, PIN_NUMBER, keys=f"wwww{PIN}#")[PIN_NUMBER]
        assert (done["state"], done["action"], done["reason"]) == ("LOGGEDOUT", "login", "permitted"), done
        assert done["_prompts"][:2] == ["agent-pass", "agent-loginok"], done["_prompts"]
        assert done["_prompts"][2:] == [f"digits/{d}" for d in PIN_NUMBER]
        assert ring(PIN_NUMBER) in pbx.ast.member_list("8010")
        assert [f[2] for f in pbx.events("ADDMEMBER", ring(PIN_NUMBER))] == ["8010"]
        # the keys went as RFC 4733 events: both sides agreed on telephone-event
        assert "telephone-event/8000" in pbx.new_log()
        assert not re.search(r"^INFO sip:", pbx.new_log(), re.M)             # no SIP INFO digits
        assert PIN not in "\n".join(pbx.new_qmt_log())
    finally:
        remove_member(pbx, PIN_NUMBER, "8010")


def test_the_losing_mobiles_prompt_stops_within_a_second_of_the_winners_connect(fresh):
    pbx = fresh
    pbx.mobile(A, "accept")
    pbx.mobile(B, "silent")               # answers, would hear the whole prompt
    tag = pbx.customer("8008", cid=CUSTOMER)
    connected(pbx, A)
    won = connect_time(pbx, A)
    lost = wait_for(lambda: pbx.far_hangups(B), 15, "B's call ending")[0]
    assert pbx.heard_by_mobile(B)[:1] == ["followme/call-from"]     # B was in its prompt
    assert lost - won <= CUT_WITHIN, f"B's prompt went on {lost - won:.2f} s after A's CONNECT"
    assert pbx.events("QMTMISSED", B) == [] and pbx.events("QMTNOCONFIRM", B) == []
    assert pbx.astdb(B, "missed") == "0"
    pbx.hang_up(tag)


def test_a_customer_hanging_up_during_the_prompt_stops_it_within_a_second(fresh):
    pbx = fresh
    pbx.mobile(A, "silent")
    tag = pbx.customer("8010", cid=CUSTOMER)
    pbx.wait_line(rf"Local/{A}@outbound-allroutes-\w+;1> Playing 'followme/call-from", 20)
    time.sleep(1.5)                       # well into the prompt
    pbx.hang_up(tag)
    gone = pbx.caller_gone(tag)
    ended = wait_for(lambda: pbx.far_hangups(A), 15, "A's call ending")[0]
    assert ended - gone <= CUT_WITHIN, f"A's prompt went on {ended - gone:.2f} s after the customer hung up"
    assert pbx.events("ABANDON")
    assert pbx.events("QMTMISSED", A) == [] and pbx.events("QMTNOCONFIRM", A) == []
    assert pbx.astdb(A, "missed") == "0"
