"""Issue 15, "no route": a login or a resume is refused (ERROR no_route)
when the outbound route cannot dial the number, asked of Asterisk with
DIALPLAN_EXISTS before any PIN prompt; a logout never asks. `qmt doctor`
names every permitted number the route cannot dial and every number rung
without confirmation; `qmt check` says whether the route dials its number.
The AGI runs against the fake Asterisk over pipes; `qmt` against a fake
`asterisk -rx` on PATH (tests/e2e/test_e2e_route.py proves it on Asterisk)."""

import json
import os
import subprocess
import sys

import pytest

from qmt.pin import hash_pin
from support import REPO

N = "79112223344"
IFACE = "Local/%s@qmt-ring/n" % N
ROUTE = "outbound-allroutes"
ONLY_8 = {ROUTE: ["_8X!"]}            # a route that dials only 8...: N is not among them
PIN = "802457"


def assert_clean_exit(run):
    assert not run.killed_by_peer and run.exit_code == 0 and "Traceback" not in run.stderr, run.stderr


def decision_lines(toggle):
    return [line for line in toggle.log_lines() if "queue-mobile-toggle:" in line]


def route_command(run):
    """The index in run.commands of the DIALPLAN_EXISTS question (None if never asked)."""
    return next((i for i, c in enumerate(run.commands) if "DIALPLAN_EXISTS" in c), None)


def with_route(toggle, route):
    """The config's [member] route set to `route`."""
    with open(toggle.config, encoding="utf-8") as handle:
        text = handle.read()
    with open(toggle.config, "w", encoding="utf-8") as handle:
        handle.write(text.replace("route = %s\n" % ROUTE, "route = %s\n" % route))


# -- the AGI: login and resume ask the route, logout never --------------------

@pytest.mark.parametrize("queue", ["8008", None])
def test_a_login_the_route_cannot_dial_is_refused_with_no_route_and_changes_nothing(toggle, queue):
    toggle.allowlist.add(N, "8008")
    toggle.asterisk.routes = ONLY_8
    run = toggle.call("+" + N, queue)
    assert_clean_exit(run)
    assert (run.state, run.get("QMT_REASON"), run.get("QUEUEUSER"), run.get("QAGENT_UNAUTHORIZED")) == \
        ("ERROR", "no_route", N, "0")
    assert run.get("QMT_INTERFACE") is None and run.get("QMT_COUNT") is None and run.get("QMT_RING_ROUTE") is None
    assert run.set_order[-1] == "QUEUESTAT"
    toggle.act_as_dialplan(run)
    assert not toggle.member("8008", N)
    assert toggle.asterisk.route_questions == [(ROUTE, N, "1")]
    assert run.commands[route_command(run)] == 'GET FULL VARIABLE "${DIALPLAN_EXISTS(%s,%s,1)}"' % (ROUTE, N)
    lines = decision_lines(toggle)
    assert len(lines) == 1
    assert "number=%s " % N in lines[0] and " state=ERROR action=none reason=no_route " in lines[0]
    assert "detail=route %s cannot dial %s (see qmt doctor): login to 8008 refused, nothing changed" % (ROUTE, N) \
        in lines[0]


def test_the_route_asked_is_the_configs_and_the_number_the_normalised_digits(toggle):
    toggle.allowlist.add(N, "8008")
    with_route(toggle, "from-mobiles")
    toggle.asterisk.routes = {"from-mobiles": ["_7XXXXXXXXXX"], ROUTE: []}
    run = toggle.call("8" + N[1:], "8008")
    assert (run.state, run.get("QMT_RING_ROUTE")) == ("LOGGEDOUT", "from-mobiles")
    assert toggle.asterisk.route_questions == [("from-mobiles", N, "1")]


def test_a_login_the_route_can_dial_goes_on(toggle):
    toggle.allowlist.add(N, "8008")
    toggle.asterisk.routes = {ROUTE: ["_8X!", "_79XXXXXXXXX"]}
    run = toggle.call(N, "8008")
    assert (run.state, run.get("QMT_REASON"), run.queues) == ("LOGGEDOUT", "permitted", ["8008"])


def test_a_route_context_that_is_not_loaded_dials_nothing(toggle):
    toggle.allowlist.add(N, "8008")
    toggle.asterisk.routes = {}
    assert toggle.call(N, "8008").get("QMT_REASON") == "no_route"


def paused_member(toggle):
    toggle.allowlist.add(N, "8008")
    toggle.asterisk.queues["8008"].append(IFACE)
    toggle.asterisk.paused.add(("8008", IFACE))
    toggle.asterisk.pause_reasons[("8008", IFACE)] = "qmt-missed"


@pytest.mark.parametrize("queue", ["8008", None])
def test_a_resume_the_route_cannot_dial_is_refused_with_no_route_and_stays_paused(toggle, queue):
    paused_member(toggle)
    toggle.asterisk.routes = ONLY_8
    run = toggle.call(N, queue)
    assert_clean_exit(run)
    assert (run.state, run.get("QMT_REASON"), run.get("QMT_COUNT")) == ("ERROR", "no_route", None)
    toggle.act_as_dialplan(run)
    assert toggle.asterisk.paused == {("8008", IFACE)} and toggle.member("8008", N)
    assert toggle.asterisk.route_questions == [(ROUTE, N, "1")]
    assert "reason=no_route detail=route %s cannot dial %s (see qmt doctor): resume to 8008 refused" % (ROUTE, N) \
        in decision_lines(toggle)[0]


def test_a_resume_the_route_can_dial_goes_on(toggle):
    paused_member(toggle)
    toggle.asterisk.routes = {ROUTE: ["_7X!"]}
    assert toggle.call(N).state == "PAUSED"


@pytest.mark.parametrize("paused", [False, True])
def test_a_logout_of_a_number_no_route_dials_still_works_and_never_asks(toggle, paused):
    toggle.allowlist.add(N, "8008")
    toggle.asterisk.queues["8008"].append(IFACE)
    if paused:                      # paused by a supervisor: not resumable, so the call logs him out
        toggle.asterisk.paused.add(("8008", IFACE))
        toggle.asterisk.pause_reasons[("8008", IFACE)] = "lunch"
    toggle.asterisk.routes = {}
    for queue in ("8008", None):
        run = toggle.call(N, queue)
        assert_clean_exit(run)
        assert (run.state, run.get("QMT_REASON"), run.queues) == ("LOGGEDIN", "member", ["8008"])
    toggle.act_as_dialplan(run)
    assert not toggle.member("8008", N)
    assert toggle.asterisk.route_questions == []


def test_a_refused_stranger_never_asks_the_route(toggle):
    toggle.allowlist.add("79990001122", "8008")
    run = toggle.call(N, "8008")
    assert run.get("QMT_REASON") == "not_permitted" and toggle.asterisk.route_questions == []


# -- the question's failures fail closed ----------------------------------------

def route_index(toggle):
    """The 1-based number of the route question among a login's commands,
    from a clean run (which changes nothing: the fake dialplan does not act)."""
    probe = toggle.call(N, "8008")
    assert probe.state == "LOGGEDOUT" and route_command(probe) is not None
    open(toggle.log_file, "w").close()
    return route_command(probe) + 1


def is_route_question(command, args):
    return command == "GET FULL VARIABLE" and args and "DIALPLAN_EXISTS" in args[0]


@pytest.mark.parametrize("reply", [
    "510 Invalid or unknown command",
    "511 Command Not Permitted on a dead channel or intercept routine",
    "520-Invalid command syntax.  Proper usage follows:\n Usage: GET FULL VARIABLE\n520 End of proper usage.",
    "200 result=-1",
])
def test_an_agi_failure_at_the_route_question_answers_nothing(toggle, reply):
    toggle.allowlist.add(N, "8008")
    run = toggle.call(N, "8008", reply_override=lambda command, args: reply if is_route_question(command, args)
                      else None)
    assert_clean_exit(run)
    assert run.get("QUEUESTAT") is None and not any(c.startswith("EXEC") for c in run.commands)
    lines = decision_lines(toggle)
    assert len(lines) == 1 and "reason=channel_gone" in lines[0] and "before the login: nothing changed" in lines[0]


@pytest.mark.parametrize("reply", ["200 result=1 (2)", "200 result=1 ()", "200 result=0", "200 result=1 (hangup)",
                                   "200 result=1 (10)", "200 result=1 (yes)", "200 result=1 (01)"])
def test_an_answer_that_is_neither_1_nor_0_refuses_the_login(toggle, reply):
    toggle.allowlist.add(N, "8008")
    run = toggle.call(N, "8008", reply_override=lambda command, args: reply if is_route_question(command, args)
                      else None)
    assert_clean_exit(run)
    assert (run.state, run.get("QMT_REASON"), run.get("QMT_INTERFACE")) == ("ERROR", "route_unknown", None)
    assert "not 1 or 0: login to 8008 refused, nothing changed" in decision_lines(toggle)[0]


def test_a_hangup_before_the_route_question_answers_nothing(toggle):
    toggle.allowlist.add(N, "8008")
    at = route_index(toggle)
    run = toggle.call(N, "8008", hangup_after=at - 1)       # SIGHUP: the question is never sent
    assert_clean_exit(run)
    assert run.get("QUEUESTAT") is None and route_command(run) is None
    assert "reason=channel_gone" in decision_lines(toggle)[0]


def test_asterisk_closing_the_pipe_at_the_route_question_answers_nothing(toggle):
    toggle.allowlist.add(N, "8008")
    at = route_index(toggle)
    run = toggle.call(N, "8008", eof_after=at)
    assert_clean_exit(run)
    assert run.get("QUEUESTAT") is None and "reason=channel_gone" in decision_lines(toggle)[0]


# -- the route before the PIN ------------------------------------------------------

def pinned(toggle, required="no"):
    toggle.allowlist.add(N, "8008")
    toggle.allowlist.execute("UPDATE queue_mobile_agents SET pin_hash = ?", hash_pin(PIN, iterations=1000))
    toggle.configure(extra="\n[pin]\nrequired = %s\n" % required)
    toggle.asterisk.keyed = [PIN + "#"]


def test_no_pin_is_asked_before_a_no_route_refusal(toggle):
    pinned(toggle)
    toggle.asterisk.routes = ONLY_8
    run = toggle.call(N, "8008")
    assert_clean_exit(run)
    assert (run.state, run.get("QMT_REASON")) == ("ERROR", "no_route")
    assert run.prompts == [] and not any(c.startswith("GET DATA") for c in run.commands)
    assert toggle.asterisk.keyed == [PIN + "#"]                       # nothing was read from the caller
    assert not any(family == "qmt-pin" for family, _key in toggle.asterisk.astdb)


def test_with_a_route_the_pin_is_asked_after_the_route_question(toggle):
    pinned(toggle)
    run = toggle.call(N, "8008")
    assert (run.state, run.prompts) == ("LOGGEDOUT", ["agent-pass"])
    asked = next(i for i, c in enumerate(run.commands) if c.startswith("GET DATA"))
    assert route_command(run) < asked


def test_with_pins_required_a_row_without_a_pin_and_no_route_hears_no_pin_prompt(toggle):
    toggle.allowlist.add(N, "8008")
    toggle.configure(extra="\n[pin]\nrequired = yes\n")
    toggle.asterisk.routes = ONLY_8
    run = toggle.call(N, "8008")
    assert (run.state, run.get("QMT_REASON"), run.prompts) == ("ERROR", "no_route", [])


# -- qmt doctor, qmt check: asking the running Asterisk (asterisk -rx) -------------

def qmt(toggle, *args, path=None):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "agi"), **toggle.env)
    env["PATH"] = (str(path) + os.pathsep if path else "") + "/usr/bin:/bin"
    return subprocess.run([sys.executable, "-m", "qmt", "--config", toggle.config, *args],
                          capture_output=True, text=True, env=env, timeout=60)


def fake_cli(toggle, folder, running=True):
    """The folder to put first on PATH: an `asterisk` there answers from the fake's routes and astdb."""
    toggle.asterisk.write_cli(folder, running)
    return folder


def doctor_line(result, check):
    """The doctor's line of one check, "[PASS]    route: ..."; '' if none."""
    return next((line for line in result.stdout.splitlines()
                 if line.split("]", 1)[-1].strip().startswith(check + ":")), "")


def test_doctor_fails_route_naming_each_permitted_number_the_route_cannot_dial(toggle, tmp_path):
    toggle.allowlist.add(N, "8008")
    toggle.allowlist.add(N, "8010")
    toggle.allowlist.add("89115550011", "8008")                # stored in the national form: 79115550011
    toggle.allowlist.add("89990001122", "8008")
    toggle.allowlist.add("79990001133", "8008", enabled=0)     # not permitted: not checked
    toggle.asterisk.routes = {ROUTE: ["_7999X!", "_8X!"]}
    result = qmt(toggle, "doctor", path=fake_cli(toggle, tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert doctor_line(result, "route") == (
        "[FAIL]    route: the route outbound-allroutes cannot dial 79112223344, 79115550011: their logins are "
        "refused (no_route); add a dial pattern that matches them (FreePBX: an outbound route) or set "
        "[member] route")


def test_doctor_passes_route_with_a_count_when_every_permitted_number_is_dialable(toggle, tmp_path):
    toggle.allowlist.add(N, "8008")
    toggle.allowlist.add("79990001122", "8008")
    toggle.asterisk.routes = {ROUTE: ["_7X!"], "qmt-ring": [], "qmt-confirm": []}
    result = qmt(toggle, "--json", "doctor", path=fake_cli(toggle, tmp_path))
    checks = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
    assert (checks["route"]["ok"], checks["route"]["detail"]) == \
        (True, "the route outbound-allroutes can dial all 2 permitted number(s)")
    assert checks["ring"]["ok"] is True                       # the fake CLI answers doctor's other question too


@pytest.mark.parametrize("running", [False, None], ids=["asterisk_down", "no_asterisk_command"])
def test_doctor_warns_on_route_when_asterisk_cannot_be_asked(toggle, tmp_path, running):
    toggle.allowlist.add(N, "8008")
    result = qmt(toggle, "doctor", path=tmp_path if running is None else fake_cli(toggle, tmp_path, running))
    line = doctor_line(result, "route")
    assert line.startswith("[WARN]    route: the permitted numbers not checked against the route "
                           "outbound-allroutes: cannot ask Asterisk (asterisk -rx)"), result.stdout


def test_doctor_warns_on_route_when_the_table_cannot_be_read(toggle, tmp_path):
    toggle.configure(connection="DSN=no_such_dsn_at_all")
    result = qmt(toggle, "doctor", path=fake_cli(toggle, tmp_path))
    assert doctor_line(result, "route").startswith("[WARN]    route: allowlist unreadable")
    assert doctor_line(result, "database").startswith("[FAIL]")


def test_doctor_warns_on_confirm_naming_the_numbers_with_confirm_answer_0(toggle, tmp_path):
    toggle.allowlist.add(N, "8008")
    toggle.allowlist.add(N, "8010")
    toggle.allowlist.add("79990001122", "8008")
    toggle.allowlist.execute("UPDATE queue_mobile_agents SET confirm_answer = 0 WHERE queue = '8010'")
    result = qmt(toggle, "doctor", path=fake_cli(toggle, tmp_path))
    line = doctor_line(result, "confirm")
    assert line.startswith("[WARN]    confirm: off (confirm_answer = 0) for 79112223344: without confirmation, "
                           "anything that answers inside the PBX or at the carrier (a route's password prompt, an "
                           "\"all circuits busy\" message, a voicemail) is connected to the customer as if the "
                           "agent answered"), line
    toggle.allowlist.execute("UPDATE queue_mobile_agents SET confirm_answer = NULL")
    result = qmt(toggle, "doctor", path=tmp_path)
    assert doctor_line(result, "confirm") == "[PASS]    confirm: every permitted number accepts a queue call with 1"


def test_doctor_warns_that_confirm_no_turns_it_off_for_every_number_without_an_explicit_1(toggle, tmp_path):
    toggle.allowlist.add(N, "8008")
    toggle.allowlist.add("79990001122", "8008")
    toggle.allowlist.execute("UPDATE queue_mobile_agents SET confirm_answer = 1 WHERE number = ?", N)
    with open(toggle.config, encoding="utf-8") as handle:
        text = handle.read()
    with open(toggle.config, "w", encoding="utf-8") as handle:
        handle.write(text.replace("route = %s\n" % ROUTE, "route = %s\nconfirm = no\n" % ROUTE))
    result = qmt(toggle, "doctor", path=fake_cli(toggle, tmp_path))
    line = doctor_line(result, "confirm")
    assert line.startswith("[WARN]    confirm: off for every number without confirm_answer = 1 ([member] confirm "
                           "= no), here 79990001122: without confirmation, anything that answers"), line


def test_check_says_whether_the_route_dials_the_number_and_refuses_as_the_call_would(toggle, tmp_path):
    toggle.allowlist.add(N, "8008")
    toggle.asterisk.routes = ONLY_8
    result = qmt(toggle, "check", "8 911 222-33-44", path=fake_cli(toggle, tmp_path))
    assert result.returncode == 1, result.stderr
    assert "route:     outbound-allroutes CANNOT dial 79112223344: a login or resume is refused (no_route)" \
        in result.stdout.splitlines()
    assert "decision:  ERROR, action none (reason=no_route) route outbound-allroutes cannot dial 79112223344 " \
        "(see qmt doctor): login to 8008 refused, nothing changed" in result.stdout.splitlines()
    assert toggle.call(N, "8008").get("QMT_REASON") == "no_route"                # the call agrees

    toggle.asterisk.routes = {ROUTE: ["_7X!"]}
    result = qmt(toggle, "--json", "check", N, path=fake_cli(toggle, tmp_path))
    report = json.loads(result.stdout)
    assert result.returncode == 0
    assert report["route"] == {"route": ROUTE, "dials": True, "error": None}
    assert (report["decision"]["state"], report["decision"]["reason"]) == ("LOGGEDOUT", "permitted")


def test_check_of_a_member_says_no_route_but_the_logout_stays_ok(toggle, tmp_path):
    toggle.asterisk.queues["8008"].append(IFACE)
    toggle.asterisk.routes = ONLY_8
    result = qmt(toggle, "check", N, path=fake_cli(toggle, tmp_path))
    assert result.returncode == 0
    assert "route:     outbound-allroutes CANNOT dial" in result.stdout
    assert "decision:  LOGGEDIN, action logout 8008 (reason=member)" in result.stdout


def test_check_without_asterisks_cli_says_so_and_keeps_the_allowlists_answer(toggle, tmp_path):
    toggle.allowlist.add(N, "8008")
    result = qmt(toggle, "--json", "check", N, path=tmp_path)         # no asterisk command at all
    report = json.loads(result.stdout)
    assert result.returncode == 0
    assert report["route"]["dials"] is None and report["route"]["error"].startswith("cannot ask Asterisk")
    assert report["decision"]["state"] == "LOGGEDOUT"
    text = qmt(toggle, "check", N, path=tmp_path).stdout
    assert "route:     not checked: cannot ask Asterisk (asterisk -rx)" in text


def test_with_pins_required_a_stranger_asks_the_route_too_so_his_requests_are_a_members(toggle):
    toggle.allowlist.add("79990001122", "8008")
    toggle.configure(extra="\n[pin]\nrequired = yes\n")
    run = toggle.call(N, "8008")
    assert (run.state, run.get("QMT_REASON"), run.prompts[0]) == ("DENIED", "not_permitted", "agent-pass")
    assert toggle.asterisk.route_questions == [(ROUTE, N, "1")]                 # asked, answer unused
    assert route_command(run) < next(i for i, c in enumerate(run.commands) if c.startswith("GET DATA"))
