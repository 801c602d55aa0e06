"""Issue 15, "no route", on the session's real Asterisk 22: with [member]
route pointed at a context that dials only numbers starting with 8 (as many
installs' outbound routes do) and, through an `include =>`, one more number,
a login of a number the route cannot dial is refused before anything
changes, and `qmt doctor` and `qmt check` name it. The contexts are added at
run time (`dialplan add`) and removed again, and the installed config is
restored: the session PBX is shared."""

import re

import pytest

from harness.logs import prompts
from test_e2e_qmt import qmt, qmt_json
from test_e2e_toggle import IFACE, NUM, OTHER, assert_members, new_log, new_queue_log

CONF = "/etc/asterisk/queue_mobile_toggle.conf"
ROUTE = "qmt-e2e-8only"              # the route: _8! only, and includes ROUTE_MORE
ROUTE_MORE = "qmt-e2e-more"          # dials OTHER only: proves include => is followed


def dialplan_has(pbx, context):
    return f"[ Context '{context}'" in pbx.ast.cli(f"dialplan show {context}")


@pytest.fixture
def route_8only(clean):
    pbx = clean
    conf = pbx.root.p(CONF)
    before = conf.read_text()
    # (the CLI splits its arguments at spaces: none in the applications' data)
    for line in (f"dialplan add extension _8!,1,NoOp(route_for_8_only) into {ROUTE}",
                 f"dialplan add extension {OTHER},1,NoOp(one_more_number) into {ROUTE_MORE}",
                 f"dialplan add include {ROUTE_MORE} into {ROUTE}"):
        said = pbx.ast.cli(line)
        assert re.search(r"\b(added|included)\b", said), f"{line}: {said}"
    assert dialplan_has(pbx, ROUTE) and dialplan_has(pbx, ROUTE_MORE)
    text, found = re.subn(r"(?m)^route *=.*$", f"route = {ROUTE}", before)
    assert found == 1, "no [member] route in the installed config"
    conf.write_text(text)
    try:
        yield pbx
    finally:
        conf.write_text(before)
        # (a dialplan reload keeps contexts added from the CLI: removed by name)
        for context in (ROUTE, ROUTE_MORE):
            pbx.ast.cli(f"dialplan remove context {context}")
        for number in (NUM, OTHER):
            pbx.ast.cli(f"database deltree qmt-ring/{number}")
        assert not dialplan_has(pbx, ROUTE) and not dialplan_has(pbx, ROUTE_MORE)
        assert dialplan_has(pbx, "outbound-allroutes") and dialplan_has(pbx, "qmt-ring")


def test_a_login_the_route_cannot_dial_hears_the_error_prompt_and_adds_no_member(route_8only):
    pbx = route_8only
    pbx.allow(NUM, "8008")
    r = pbx.ast.call(NUM)
    assert (r["AGISTATUS"], r["QUEUESTAT"], r["QMT_REASON"], r["QUEUEUSER"]) == \
        ("SUCCESS", "ERROR", "no_route", NUM)
    assert prompts(r["_log"]) == ["sorry-youre-having-problems"]
    assert r["AQMSTATUS"] == ""                                   # AddQueueMember never ran
    assert_members(pbx, {})
    assert new_queue_log(pbx) == []
    assert any(f"number={NUM} " in line and " state=ERROR action=none reason=no_route " in line
               and f"detail=route {ROUTE} cannot dial {NUM} (see qmt doctor): login to 8008 refused" in line
               for line in pbx.qmt_log()), pbx.qmt_log()[-3:]
    assert f"queue-mobile-toggle: error for number={NUM}: ERROR no_route AGISTATUS=SUCCESS" in new_log(pbx)


def test_a_number_the_route_reaches_through_an_include_logs_in(route_8only):
    pbx = route_8only
    pbx.allow(OTHER, "8008")
    r = pbx.ast.call(OTHER)
    assert (r["QUEUESTAT"], r["QMT_REASON"], r["AQMSTATUS"]) == ("LOGGEDOUT", "permitted", "ADDED")
    assert pbx.ast.cli(f"database get qmt-ring/{OTHER} route").strip().endswith(f"Value: {ROUTE}")


def test_a_member_the_route_cannot_dial_still_logs_out(route_8only):
    pbx = route_8only
    pbx.allow(NUM, "8008")
    pbx.ast.ami.action("QueueAdd", Queue="8008", Interface=IFACE)
    r = pbx.ast.call(NUM)
    assert (r["QUEUESTAT"], r["QMT_REASON"], r["RQMSTATUS"]) == ("LOGGEDIN", "member", "REMOVED")
    assert prompts(r["_log"]) == ["agent-loggedoff"]
    assert_members(pbx, {})


def test_doctor_fails_the_route_line_naming_only_the_numbers_it_cannot_dial(route_8only):
    pbx = route_8only
    pbx.allow(NUM, "8008")
    pbx.allow(OTHER, "8008")
    p = qmt(pbx, "doctor")
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stdout + p.stderr
    assert f"[FAIL]    route: the route {ROUTE} cannot dial {NUM}: their logins are refused (no_route)" in p.stdout
    assert f"[PASS]    ring: contexts qmt-ring, qmt-confirm and the route {ROUTE} are loaded" in p.stdout
    pbx.sql("DELETE FROM queue_mobile_agents WHERE number = ?", (NUM,))
    p = qmt(pbx, "doctor")
    assert f"[PASS]    route: the route {ROUTE} can dial all 1 permitted number(s)" in p.stdout, p.stdout


def test_check_says_the_route_cannot_dial_the_number_as_the_call_finds(route_8only):
    pbx = route_8only
    pbx.allow(NUM, "8008")
    pbx.allow(OTHER, "8008")
    p = qmt(pbx, "check", NUM)
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"route:     {ROUTE} CANNOT dial {NUM}: a login or resume is refused (no_route)" in p.stdout
    code, report = qmt_json(pbx, "check", OTHER)
    assert (code, report["route"], report["decision"]["state"]) == \
        (0, {"route": ROUTE, "dials": True, "error": None}, "LOGGEDOUT")
    assert pbx.ast.call(NUM)["QMT_REASON"] == "no_route"            # the call agrees with check
    assert_members(pbx, {})
