"""Calls through the installed toggle on a real Asterisk 22: the outcome is
read back from Asterisk itself (QUEUE_MEMBER_LIST, QueueStatus, queue show),
from queue_log, from the channel variables at hangup and from the prompts
the full log says were played."""

import re
import time

import pytest

from harness.logs import prompts
from harness.pbx_config import QUEUES
from harness.root import SQLITE_DB

NUM = "79112223344"
IFACE = f"Local/{NUM}@qmt-ring/n"
OTHER = "79998887766"
DIGITS = [f"digits/{d}" for d in NUM]


def new_queue_log(pbx):
    return pbx.ast.queue_log_lines()[pbx.queue_log_mark:]


def qlog(pbx, event, queue=None, iface=IFACE):
    """queue_log lines of this test: epoch|uniqueid|queue|agent|EVENT|..."""
    out = []
    for line in new_queue_log(pbx):
        f = line.split("|")
        if len(f) >= 5 and f[4] == event and f[3] == iface and (queue is None or f[2] == queue):
            out.append(f[2])
    return sorted(out)


def new_log(pbx):
    return pbx.ast.log_text()[pbx.log_mark:]


def assert_members(pbx, expected):
    """expected: {queue: {iface: (penalty, name)}} for both test queues."""
    for q in QUEUES:
        want = expected.get(q, {})
        assert sorted(pbx.ast.member_list(q)) == sorted(want), f"QUEUE_MEMBER_LIST({q})"
        got = {i: (m["penalty"], m["name"]) for i, m in pbx.ast.members(q).items()}
        assert got == want, f"QueueStatus of {q}"
        for iface, (_pen, _name) in want.items():
            assert pbx.ast.members(q)[iface]["dynamic"]


def test_permitted_login_then_logout_all_queues(clean):
    pbx = clean
    pbx.allow(NUM, "8008", penalty=0, name="Ivan Petrov")
    r = pbx.ast.call("+" + NUM)
    assert (r["AGISTATUS"], r["QUEUESTAT"], r["QMT_REASON"], r["AQMSTATUS"]) == \
        ("SUCCESS", "LOGGEDOUT", "permitted", "ADDED")
    assert r["QUEUEUSER"] == NUM and r["QMT_COUNT"] == "1"
    assert prompts(r["_log"]) == ["agent-loginok"] + DIGITS
    assert_members(pbx, {"8008": {IFACE: (0, "Ivan Petrov")}})
    assert qlog(pbx, "ADDMEMBER") == ["8008"]
    assert any(re.search(rf"number={NUM} channel=Local/\d+@qmt-caller-\w+;2 queues=8008 state=LOGGEDOUT "
                         "action=login reason=permitted", line) for line in pbx.qmt_log())

    # the national form with the trunk prefix is the same person
    r = pbx.ast.call("8" + NUM[1:])
    assert (r["AGISTATUS"], r["QUEUESTAT"], r["RQMSTATUS"]) == ("SUCCESS", "LOGGEDIN", "REMOVED")
    assert prompts(r["_log"]) == ["agent-loggedoff"]
    assert_members(pbx, {})
    assert qlog(pbx, "REMOVEMEMBER") == ["8008"]
    assert qlog(pbx, "ADDMEMBER") == ["8008"]          # one each, no duplicate lines


def test_permitted_login_then_logout_one_queue(clean):
    pbx = clean
    pbx.allow(NUM, "8008", penalty=2)
    pbx.allow(NUM, "8010", penalty=4)
    r = pbx.ast.call(NUM, target="8010")
    assert (r["QUEUESTAT"], r["AQMSTATUS"], r["QMT_COUNT"]) == ("LOGGEDOUT", "ADDED", "1")
    assert prompts(r["_log"]) == ["agent-loginok"] + DIGITS
    # only 8010; no member name in the table: the number stands for it
    assert_members(pbx, {"8010": {IFACE: (4, NUM)}})
    assert qlog(pbx, "ADDMEMBER") == ["8010"]

    r = pbx.ast.call(NUM, target="8010")
    assert (r["QUEUESTAT"], r["RQMSTATUS"]) == ("LOGGEDIN", "REMOVED")
    assert prompts(r["_log"]) == ["agent-loggedoff"]
    assert_members(pbx, {})
    assert qlog(pbx, "REMOVEMEMBER") == ["8010"]


def test_two_queues_with_different_penalties(clean):
    pbx = clean
    pbx.allow(NUM, "8008", penalty=1, name="Anna Ivanova")
    pbx.allow(NUM, "8010", penalty=5, name="Anna Ivanova")
    pbx.allow(NUM, "9999", penalty=0)                  # a queue Asterisk does not have
    r = pbx.ast.call(NUM)
    assert (r["QUEUESTAT"], r["QMT_COUNT"], r["AQMSTATUS"]) == ("LOGGEDOUT", "2", "ADDED")
    assert prompts(r["_log"]) == ["agent-loginok"] + DIGITS
    assert_members(pbx, {"8008": {IFACE: (1, "Anna Ivanova")}, "8010": {IFACE: (5, "Anna Ivanova")}})
    shown = re.sub(r"\x1b\[[0-9;]*m", "", pbx.ast.cli("queue show 8010"))
    assert f"Anna Ivanova ({IFACE}) with penalty 5" in shown
    assert qlog(pbx, "ADDMEMBER") == ["8008", "8010"]

    r = pbx.ast.call(NUM)                              # all queues: leaves both
    assert (r["QUEUESTAT"], r["QMT_COUNT"], r["RQMSTATUS"]) == ("LOGGEDIN", "2", "REMOVED")
    assert prompts(r["_log"]) == ["agent-loggedoff"]
    assert_members(pbx, {})
    assert qlog(pbx, "REMOVEMEMBER") == ["8008", "8010"]


def test_refused_number(clean):
    pbx = clean
    pbx.allow(NUM, "8008")
    r = pbx.ast.call("79990001122")                    # a valid number, not in the table
    assert (r["AGISTATUS"], r["QUEUESTAT"], r["QAGENT_UNAUTHORIZED"], r["QMT_REASON"]) == \
        ("SUCCESS", "DENIED", "1", "not_permitted")
    assert prompts(r["_log"]) == ["pbx-invalid"]
    r = pbx.ast.call(NUM, target="8010")               # permitted, but not in that queue
    assert (r["QUEUESTAT"], r["QMT_REASON"]) == ("DENIED", "not_permitted")
    assert prompts(r["_log"]) == ["pbx-invalid"]
    assert_members(pbx, {})
    assert new_queue_log(pbx) == []


HOSTILE = {
    "shell": "7911;rm -rf",
    "quote": '"' + NUM,
    "quote-end": NUM + '"',
    "channel-name": NUM + "@evil/n",
    "channel-sep": NUM + "&Local/666@evil",
    "dialplan-func": "${SHELL(id)}",
    "dialplan-func-digits": NUM + "${SHELL(id)}",
    "sql": "' OR '1'='1",
    "sql-digits": NUM + "' OR '1'='1",
    "anonymous": "anonymous",
    "empty": "",
    "arabic-indic": "".join(chr(0x0660 + int(d)) for d in NUM),
    "fullwidth": "".join(chr(0xFF10 + int(d)) for d in NUM),
    "too-long": "7" * 16,
    "space": NUM[:4] + " " + NUM[4:],
}


@pytest.mark.parametrize("cid", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_caller_id_is_refused(clean, cid):
    pbx = clean
    # the digits inside each hostile ID are permitted: a sloppy filter would log them in
    pbx.allow(NUM, "8008")
    pbx.allow(NUM, "8010")
    slot = pbx.ast.place(cid)
    chans_during = []
    for _ in range(10):                                # while the call is up
        chans_during += pbx.ast.channels()
        time.sleep(0.1)
    r = pbx.ast.result(slot)
    assert r["AGISTATUS"] == "SUCCESS"
    assert (r["QUEUESTAT"], r["QMT_REASON"], r["QUEUEUSER"]) == ("DENIED", "invalid_number", "")
    assert prompts(r["_log"]) == ["pbx-invalid"]
    assert_members(pbx, {})
    assert new_queue_log(pbx) == []
    assert not any("evil" in c for c in chans_during + pbx.ast.channels())
    log = new_log(pbx)
    assert "uid=" not in log                           # SHELL(id) never ran
    assert not re.search(r"@evil-[0-9a-f]{8}|Executing \[[^]]*@evil", log)
    assert "AddQueueMember" not in log and "RemoveQueueMember" not in log
    # the caller's own channel never became a member either
    assert pbx.ast.getvar("QUEUE_MEMBER_LIST(8008)") == ""


def test_revoked_number_logs_out_and_cannot_return(clean):
    pbx = clean
    pbx.allow(NUM, "8008", penalty=3)
    assert pbx.ast.call(NUM)["AQMSTATUS"] == "ADDED"
    assert_members(pbx, {"8008": {IFACE: (3, NUM)}})

    pbx.sql("UPDATE queue_mobile_agents SET enabled = 0 WHERE number = ?", (NUM,))
    r = pbx.ast.call(NUM)                              # a revoked member may still leave
    assert (r["QUEUESTAT"], r["RQMSTATUS"]) == ("LOGGEDIN", "REMOVED")
    assert prompts(r["_log"]) == ["agent-loggedoff"]
    assert_members(pbx, {})

    r = pbx.ast.call(NUM)                              # ...but not come back
    assert (r["QUEUESTAT"], r["QMT_REASON"]) == ("DENIED", "not_permitted")
    assert prompts(r["_log"]) == ["pbx-invalid"]
    # an expired validity window refuses too
    pbx.sql("UPDATE queue_mobile_agents SET enabled = 1, valid_until = '2001-01-01 00:00:00'")
    r = pbx.ast.call(NUM, target="8008")
    assert (r["QUEUESTAT"], r["QMT_REASON"]) == ("DENIED", "not_permitted")
    assert_members(pbx, {})
    assert qlog(pbx, "ADDMEMBER") == ["8008"] and qlog(pbx, "REMOVEMEMBER") == ["8008"]


def test_allowlist_db_missing_plays_error_and_changes_nothing(clean):
    pbx = clean
    pbx.allow(NUM, "8008")
    pbx.allow(NUM, "8010")
    assert pbx.ast.call(NUM, target="8008")["AQMSTATUS"] == "ADDED"
    pbx.allow(OTHER, "8010")
    pbx.db.rename(pbx.root.p(SQLITE_DB + ".moved"))
    pbx.log_mark = len(pbx.ast.log_text())
    mark = len(new_queue_log(pbx))

    # A login needs the allowlist: NUM (a member of 8008 only) into 8010, and
    # another permitted number, a member of nothing, into all its queues.
    # (NUM calling "s" would leave 8008: a member may always log out.)
    for caller, target in ((NUM, "8010"), (OTHER, "s")):
        r = pbx.ast.call(caller, target=target)
        assert r["AGISTATUS"] == "SUCCESS"
        assert r["QUEUESTAT"] == "ERROR" and r["QMT_REASON"].startswith("db_"), r
        assert prompts(r["_log"]) == ["sorry-youre-having-problems"]
        assert_members(pbx, {"8008": {IFACE: (0, NUM)}})
    assert new_queue_log(pbx)[mark:] == []
    # the driver did not create an empty database in its place
    assert not pbx.db.exists()
    assert "AddQueueMember" not in new_log(pbx) and "RemoveQueueMember" not in new_log(pbx)


def test_member_leaves_without_row_or_db(clean):
    """Rule 4 through both destinations: the one-queue toggle asks Asterisk
    only; the all-queues toggle finds the caller's queues in astdb
    (persistentmembers=yes) when the table no longer names them."""
    pbx = clean
    pbx.allow(NUM, "8008")
    assert pbx.ast.call(NUM)["AQMSTATUS"] == "ADDED"
    pbx.sql("DELETE FROM queue_mobile_agents")
    r = pbx.ast.call(NUM, target="8008")
    assert (r["QUEUESTAT"], r["RQMSTATUS"]) == ("LOGGEDIN", "REMOVED")
    assert_members(pbx, {})

    pbx.allow(NUM, "8008")
    pbx.allow(NUM, "8010")
    assert pbx.ast.call(NUM)["QMT_COUNT"] == "2"
    pbx.sql("DELETE FROM queue_mobile_agents")
    r = pbx.ast.call(NUM)                              # no row, all queues
    assert (r["QUEUESTAT"], r["QMT_COUNT"], r["RQMSTATUS"]) == ("LOGGEDIN", "2", "REMOVED")
    assert_members(pbx, {})

    pbx.allow(NUM, "8008")
    assert pbx.ast.call(NUM)["AQMSTATUS"] == "ADDED"
    pbx.db.rename(pbx.root.p(SQLITE_DB + ".moved"))
    try:
        r = pbx.ast.call(NUM)                          # ...even with the allowlist gone
        assert (r["QUEUESTAT"], r["RQMSTATUS"]) == ("LOGGEDIN", "REMOVED")
        assert_members(pbx, {})
        r = pbx.ast.call(NUM)                          # but no login without it
        assert (r["QUEUESTAT"], r["QMT_REASON"]) == ("ERROR", "db_not_found")
        assert_members(pbx, {})
    finally:
        pbx.root.p(SQLITE_DB + ".moved").rename(pbx.db)


def test_restart_keeps_members(clean):
    pbx = clean
    pbx.allow(NUM, "8008", penalty=1, name="Restart Test")
    pbx.allow(NUM, "8010", penalty=7, name="Restart Test")
    assert pbx.ast.call(NUM)["QMT_COUNT"] == "2"
    before = {q: pbx.ast.members(q) for q in QUEUES}
    assert all(IFACE in m for m in before.values())

    pbx.ast.stop()
    assert not pbx.ast.running()
    pbx.ast.start()
    after = {q: pbx.ast.members(q) for q in QUEUES}
    assert after == before                             # interface, penalty, name, dynamic

    r = pbx.ast.call(NUM)                              # and the toggle still sees them
    assert (r["QUEUESTAT"], r["RQMSTATUS"], r["QMT_COUNT"]) == ("LOGGEDIN", "REMOVED", "2")
    assert_members(pbx, {})


def consistent(pbx, iface=IFACE):
    """Members are never duplicated and queue_log adds up: per queue,
    ADDMEMBER - REMOVEMEMBER == 1 if a member else 0."""
    for q in QUEUES:
        members = pbx.ast.member_list(q)
        assert len(members) == len(set(m.lower() for m in members)), f"duplicate member in {q}: {members}"
        now = members.count(iface)
        balance = len(qlog(pbx, "ADDMEMBER", q, iface)) - len(qlog(pbx, "REMOVEMEMBER", q, iface))
        assert balance == now, f"queue {q}: queue_log says {balance}, Asterisk has {now}"


@pytest.mark.parametrize("calls", [2, 5])
def test_simultaneous_calls_from_one_number_stay_consistent(clean, calls):
    pbx = clean
    pbx.allow(NUM, "8008", penalty=2)
    pbx.allow(NUM, "8010", penalty=2)
    for _round in range(2):                            # at once from logged out, then again
        slots = [pbx.ast.place(NUM) for _ in range(calls)]   # AMI, back to back: same instant
        results = [pbx.ast.result(s, timeout=90) for s in slots]
        for r in results:
            assert r["AGISTATUS"] == "SUCCESS", r
            assert r["QUEUESTAT"] in ("LOGGEDIN", "LOGGEDOUT"), r
            assert r["AQMSTATUS"] in ("", "ADDED", "MEMBERALREADY"), r
            assert r["RQMSTATUS"] in ("", "REMOVED", "NOTINQUEUE"), r
            assert prompts(r["_log"])[0] in ("agent-loginok", "agent-loggedoff")
        consistent(pbx)
        assert pbx.ast.running() and pbx.ast.cli("core show version").startswith("Asterisk 22")
        state = {q: NUM in " ".join(pbx.ast.member_list(q)) for q in QUEUES}
        assert state["8008"] == state["8010"], f"half logged in: {state}"
    assert "Segmentation" not in new_log(pbx)


def test_hostile_member_name_is_not_passed_to_asterisk(clean):
    pbx = clean
    pbx.allow(NUM, "8008", name="Eve),8010,0,,x")
    r = pbx.ast.call(NUM)
    assert r["AQMSTATUS"] == "ADDED"
    assert_members(pbx, {"8008": {IFACE: (0, "Eve80100x")}})   # only the name's safe characters


UNDO_CTX = "qmt-undotest"


def hand_over(pbx, gosub, queues):
    """A test context that hands `gosub` what the script would have
    answered for these queues, as if one of them had vanished between the
    script's check and the dialplan's action (9999 never exists)."""
    steps = [f"Set(QMT_INTERFACE={IFACE})", f"Set(QMT_COUNT={len(queues)})", "Set(QMT_REMAINING=)"]
    for i, queue in enumerate(queues, 1):
        steps += [f"Set(QMT_QUEUE_{i}={queue})", f"Set(QMT_PENALTY_{i}=0)", f"Set(QMT_NAME_{i}={NUM})",
                  f"Set(QMT_IFACE_{i}={IFACE})"]
    steps += [f"Gosub({gosub},s,1())",
              "Verbose(0,QMT_DONE slot=${EXTEN} QMT_FAILED=${QMT_FAILED} QMT_REMAINING=${QMT_REMAINING} END)"]
    pbx.ast.cli(f"dialplan remove context {UNDO_CTX}")
    for priority, step in enumerate(steps, 1):
        pbx.ast.cli(f'dialplan add extension "_X!,{priority},{step}" into {UNDO_CTX}')
    return pbx.ast.result(pbx.ast.place(NUM, context=UNDO_CTX))


def test_a_login_that_fails_in_one_queue_is_undone_in_the_others(clean):
    pbx = clean
    assert pbx.ast.ami.action("QueueAdd", Queue="8008", Interface=IFACE)[0]["Response"] == "Success"
    mark = len(new_queue_log(pbx))
    r = hand_over(pbx, "qmt-add-members", ["8008", "8010", "9999"])
    assert (r["QMT_FAILED"], r["QMT_REMAINING"]) == ("1", "")
    # 8010, added by this call, is left again; 8008, a member before the call, stays
    assert pbx.ast.member_list("8010") == [] and pbx.ast.member_list("8008") == [IFACE]
    events = [line.split("|")[2:5] for line in new_queue_log(pbx)[mark:]]
    assert events == [["8010", IFACE, "ADDMEMBER"], ["8010", IFACE, "REMOVEMEMBER"]]
    assert f"undo {IFACE} from 8010: RQMSTATUS=REMOVED" in "\n".join(r["_log"])


def test_a_logout_that_fails_in_one_queue_names_the_queues_left(clean):
    pbx = clean
    pbx.ast.ami.action("QueueAdd", Queue="8008", Interface=IFACE)
    r = hand_over(pbx, "qmt-remove-members", ["8008", "9999"])
    assert (r["QMT_FAILED"], r["QMT_REMAINING"]) == ("1", "9999")
    assert pbx.ast.member_list("8008") == []
