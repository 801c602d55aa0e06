"""`qmt report` on the real Asterisk 22's queue_log: a mobile logs in,
takes a call, lets a mailbox take the next, is busy for a third, is paused
and unpaused by a supervisor, logs out; the report run inside the root (as
the installed command) must give exactly what happened, read from the
queue_log lines Asterisk wrote."""

import datetime
import json
import time

from harness.logs import wait_for
from harness.root import shq
from test_e2e_ring import RING_A, A, events, ring, ring_settings  # noqa: F401  (fixtures)


def qmt_report(pbx, *args):
    p = pbx.root.sh("qmt report --json " + " ".join(shq(a) for a in args), timeout=60)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
    return json.loads(p.stdout)


def one_event(pbx, event, agent):
    found = events(pbx, event, agent)
    assert len(found) == 1, (event, found)
    return found[0]


def customer_call(pbx, mode, outcome, wait):
    """One customer calling 8008 while the mobile does `mode`; returns
    once `outcome` is in queue_log and the customer has left."""
    pbx.ast.mobile(A, mode)
    before = len(events(pbx, "COMPLETECALLER")) + len(events(pbx, "ABANDON"))
    pbx.ast.customer("8008", wait=wait)
    wait_for(outcome, wait + 15, f"the {mode} call's outcome")
    wait_for(lambda: len(events(pbx, "COMPLETECALLER")) + len(events(pbx, "ABANDON")) > before, wait + 15,
             "the customer leaving")


def test_the_report_gives_what_happened_on_the_pbx(ring):  # noqa: F811  (the fixture imported above)
    pbx = ring
    started = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(seconds=1)
    pbx.allow(A, "8008", name="Ivan")
    pbx.ast.mobile(A, "accept")
    assert pbx.ast.call(A)["AQMSTATUS"] == "ADDED"
    customer_call(pbx, "accept", lambda: events(pbx, "COMPLETECALLER", "Ivan"), wait=4)
    customer_call(pbx, "silent", lambda: events(pbx, "QMTNOCONFIRM", A), wait=8)       # a mailbox
    customer_call(pbx, "busy", lambda: [f for f in events(pbx, "QMTMISSED", A) if f[5] == "BUSY"], wait=6)
    pbx.ast.ami.action("QueuePause", Queue="8008", Interface=RING_A, Paused="true", Reason="lunch")
    time.sleep(3)
    pbx.ast.ami.action("QueuePause", Queue="8008", Interface=RING_A, Paused="false")
    pbx.ast.mobile(A, "accept")
    assert pbx.ast.call(A)["RQMSTATUS"] == "REMOVED"

    login, logout = one_event(pbx, "ADDMEMBER", RING_A), one_event(pbx, "REMOVEMEMBER", RING_A)
    paused, unpaused = one_event(pbx, "PAUSE", "Ivan"), one_event(pbx, "UNPAUSE", "Ivan")
    connect, complete = one_event(pbx, "CONNECT", "Ivan"), one_event(pbx, "COMPLETECALLER", "Ivan")
    since = started.strftime("%Y-%m-%d %H:%M:%S")
    doc = qmt_report(pbx, "--tz", "UTC", "--since", since, "--number", A)
    assert doc["time_zone"] == "UTC"
    assert len(doc["members"]) == 1, doc["members"]
    row = doc["members"][0]
    assert (row["number"], row["queue"], row["names"], row["sessions"]) == (A, "8008", ["Ivan"], 1)
    assert row["logged_in_s"] == int(logout[0]) - int(login[0])
    assert row["paused_by_reason"] == {"lunch": int(unpaused[0]) - int(paused[0])}
    assert (row["accepted"], row["missed"], row["missed_by_cause"]) == (1, 2, {"busy": 1, "unconfirmed": 1})
    assert (row["rung"], row["unconfirmed"], row["rejected"], row["ring_faults"]) == (3, 1, 0, 0)
    assert row["talk_s"] == int(complete[6])
    assert row["median_ring_to_accept_s"] == float(connect[7])
    assert doc["queues"][0]["number"] == "TOTAL" and doc["queues"][0]["accepted"] == 1
    # Without --tz: the PBX's own zone, named.
    assert qmt_report(pbx, "--since", "yesterday", "--number", A)["time_zone"]
