"""The admin command `qmt`, as install.sh puts it on root's PATH, against the
real Asterisk 22 of the session (AMI with the manager account install.sh
made) and the SQLite allowlist."""

import json
import re
import time

from harness.root import SQLITE_DB, shq
from test_e2e_toggle import IFACE, NUM, OTHER, assert_members, new_queue_log, qlog

OTHER_IFACE = f"Local/{OTHER}@outbound-allroutes/n"
DESK = "PJSIP/101"                                   # a member that is not a mobile of ours


def qmt(pbx, *args, user=None):
    return pbx.root.sh("qmt " + " ".join(shq(a) for a in args), user=user, timeout=60)


def qmt_json(pbx, *args):
    p = qmt(pbx, "--json", *args)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, json.loads(p.stdout)


def test_qmt_is_on_roots_path_and_answers_help(pbx):
    p = qmt(pbx, "--help")
    assert p.returncode == 0 and "check" in p.stdout and "sweep" in p.stdout
    assert pbx.root.sh("readlink -f /usr/local/sbin/qmt", check=True).stdout.strip() == \
        "/opt/queue-mobile-toggle/venv/bin/qmt"


def test_check_agrees_with_the_call_that_follows(clean):
    pbx = clean
    pbx.allow(NUM, "8008", penalty=2, name="Ivan")
    code, report = qmt_json(pbx, "check", "8 (911) 222-33-44")
    assert code == 0
    assert report["decision"] == {"state": "LOGGEDOUT", "action": "login", "reason": "permitted",
                                  "queues": ["8008"], "detail": ""}
    assert report["rows"] == [{"queue": "8008", "penalty": 2, "name": "Ivan", "status": "active", "problem": None,
                              "confirm": "default", "shift": None}]
    assert_members(pbx, {})                                  # check changed nothing
    r = pbx.ast.call(NUM)
    assert (r["QUEUESTAT"], r["QMT_REASON"], r["AQMSTATUS"]) == ("LOGGEDOUT", "permitted", "ADDED")

    code, report = qmt_json(pbx, "check", NUM)
    assert (code, report["decision"]["state"], report["decision"]["queues"]) == (0, "LOGGEDIN", ["8008"])
    assert pbx.ast.call(NUM)["QUEUESTAT"] == "LOGGEDIN"

    code, report = qmt_json(pbx, "check", NUM, "--queue", "8010")
    assert (code, report["decision"]["state"], report["decision"]["reason"]) == (1, "DENIED", "not_permitted")
    assert pbx.ast.call(NUM, target="8010")["QMT_REASON"] == "not_permitted"


def test_status_lists_the_mobile_members_with_their_standing(clean):
    pbx = clean
    pbx.allow(NUM, "8008", name="Ivan")
    assert pbx.ast.call(NUM)["AQMSTATUS"] == "ADDED"
    pbx.ast.ami.action("QueueAdd", Queue="8010", Interface=DESK)
    pbx.ast.ami.action("QueueAdd", Queue="8010", Interface=OTHER_IFACE)   # added by hand, no row
    pbx.ast.ami.action("QueuePause", Queue="8010", Interface=OTHER_IFACE, Paused="true", Reason="lunch")
    code, report = qmt_json(pbx, "status")
    members = {(m["queue"], m["number"]): m for m in report["members"]}
    assert set(members) == {("8008", NUM), ("8010", OTHER)}          # the desk phone is not ours
    mine = members[("8008", NUM)]
    assert (mine["standing"], mine["name"], mine["paused"], mine["in_call"]) == ("permitted", "Ivan", False, False)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", mine["login_time"]), mine
    stranger = members[("8010", OTHER)]
    assert (stranger["standing"], stranger["paused"], stranger["paused_reason"]) == ("not_in_table", True, "lunch")
    assert (mine["ring_path"], stranger["ring_path"]) == (True, False)     # OTHER by the old interface
    assert code == 1                                                  # a member without permission
    text = qmt(pbx, "status", "--queue", "8008")
    assert text.returncode == 0 and text.stdout.startswith(f"queue 8008 {NUM} (Ivan) since ")
    pbx.ast.cli(f"database put qmt-ring/{NUM} missed 2")              # as the ring path counts
    text = qmt(pbx, "status").stdout
    assert f"queue 8008 {NUM} (Ivan)" in text and "permitted, missed 2 in a row" in text
    assert f"old interface {OTHER_IFACE}: rung without confirmation until it logs in again" in text


def test_sweep_lists_then_removes_only_the_revoked_mobile(clean):
    pbx = clean
    pbx.allow(NUM, "8008")
    pbx.allow(OTHER, "8008")
    assert pbx.ast.call(NUM)["AQMSTATUS"] == "ADDED"
    assert pbx.ast.call(OTHER)["AQMSTATUS"] == "ADDED"
    pbx.ast.ami.action("QueueAdd", Queue="8008", Interface=DESK)
    assert qmt(pbx, "revoke", NUM).returncode == 0
    mark = len(new_queue_log(pbx))
    other = f"Local/{OTHER}@qmt-ring/n"

    listed = qmt(pbx, "sweep")
    assert listed.returncode == 1 and listed.stdout.startswith(f"would remove: queue 8008 {NUM}")
    assert sorted(pbx.ast.member_list("8008")) == sorted([IFACE, other, DESK])

    code, report = qmt_json(pbx, "sweep", "--apply")
    assert code == 0 and [(m["number"], m["removed"]) for m in report["members"]] == [(NUM, True)]
    assert sorted(pbx.ast.member_list("8008")) == sorted([other, DESK])
    assert [line.split("|")[2:5] for line in new_queue_log(pbx)[mark:]] == [["8008", IFACE, "REMOVEMEMBER"]]
    assert any(f"sweep number={NUM} queue=8008 interface={IFACE} standing=not_in_table removed" in line
               for line in pbx.qmt_log())
    assert qmt(pbx, "sweep", "--apply").stdout.strip() == "nothing to sweep"


def test_sweep_with_the_database_down_removes_nobody_and_exits_3(clean):
    pbx = clean
    pbx.allow(NUM, "8008")
    assert pbx.ast.call(NUM)["AQMSTATUS"] == "ADDED"
    pbx.db.rename(pbx.root.p(SQLITE_DB + ".moved"))
    try:
        p = qmt(pbx, "sweep", "--apply")
    finally:
        pbx.root.p(SQLITE_DB + ".moved").rename(pbx.db)
    assert p.returncode == 3 and p.stdout == ""
    assert p.stderr.startswith("qmt: allowlist unreadable (db_not_found): sweep removes nobody")
    assert p.stderr.count("\n") == 1
    assert pbx.ast.member_list("8008") == [IFACE]
    assert qlog(pbx, "REMOVEMEMBER") == []


def test_sweep_leaves_a_member_on_a_call_for_the_next_run(clean):
    pbx = clean
    pbx.allow(NUM, "8008")
    assert pbx.ast.call(NUM)["AQMSTATUS"] == "ADDED"
    pbx.sql("UPDATE queue_mobile_agents SET enabled = 0")
    # a customer call into 8008: the mobile accepts it and stays on the line
    pbx.ast.mobile(NUM, "accept")
    try:
        pbx.ast.customer("8008", wait=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            code, report = qmt_json(pbx, "status")
            if report["members"] and report["members"][0]["in_call"]:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the member never showed as in call")
    finally:
        pbx.ast.mobile(NUM, None)
    code, report = qmt_json(pbx, "sweep", "--apply")
    assert [(m["verdict"], m["removed"]) for m in report["members"]] == [("wait", False)]
    assert pbx.ast.member_list("8008") == [IFACE]
    assert pbx.ast.wait_idle(30)
    code, report = qmt_json(pbx, "sweep", "--apply")
    assert [(m["verdict"], m["removed"]) for m in report["members"]] == [("remove", True)]
    assert pbx.ast.member_list("8008") == []


def test_the_sweep_runs_from_cron_as_the_asterisk_user(pbx):
    cron = pbx.root.p("/etc/cron.d/queue-mobile-toggle").read_text()
    line = next(line for line in cron.splitlines() if line and not line.startswith("#") and "=" not in line)
    fields = line.split(None, 6)
    assert fields[:6] == ["*/5", "*", "*", "*", "*", "asterisk"], line
    p = pbx.root.sh(fields[6], user="asterisk")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr


def test_doctor_passes_on_the_installation(pbx):
    p = qmt(pbx, "doctor")
    assert p.returncode == 0, p.stdout + p.stderr
    for check in ("config", "database", "ami", "ring", "queues", "sweep"):
        assert f"[PASS]    {check}:" in p.stdout
