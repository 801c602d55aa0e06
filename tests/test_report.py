"""`qmt report`'s reading of queue_log: fixtures written from the events
app_queue writes (apps/app_queue.c, Asterisk 22: ADDMEMBER, REMOVEMEMBER,
PAUSE, PAUSEALL, UNPAUSE, RINGNOANSWER, RINGCANCELED, CONNECT,
COMPLETEAGENT, COMPLETECALLER, ABANDON) and the ring path's own (QMTNOCONFIRM,
QMTREJECT, QMTMISSED, QMTRINGFAULT), with what real logs hold beside them."""

import datetime
import gzip
import html
import re

import pytest

from qmt import queue_log, report, report_html
from qmt.config import Settings

ZONE_NAME = "Europe/Moscow"                    # +03:00 all year: the figures below need no DST
N1, N2 = "79115550001", "79115550002"
IFACE1, IFACE2 = f"Local/{N1}@qmt-ring/n", f"Local/{N2}@qmt-ring/n"
TABLE_ROWS = [(N1, "8008", "Ivan"), (N1, "8010", "Ivan"), (N2, "8008", None)]
DAY = "2026-12-01"

# A working day of N1 in queue 8008 (named Ivan in the table), beside a desk
# phone (PJSIP/101) and a customer's own lines. "HH:MM:SS" is that time of DAY.
WORKING_DAY = f"""\
08:00:00|NONE|NONE|NONE|QUEUESTART|
09:00:00|1.1|8008|{IFACE1}|ADDMEMBER|
09:00:00|1.2|8008|PJSIP/101|ADDMEMBER|
09:10:00|c1|8008|NONE|ENTERQUEUE||74951110000|1
09:10:05|c1|8008|Ivan|CONNECT|5|c1.9|4
09:12:05|c1|8008|Ivan|COMPLETECALLER|5|120|1
09:20:00|c2|8008|{N1}|QMTNOCONFIRM|TIMEOUT
09:20:01|c2|8008|{N1}|QMTMISSED|CONGESTION|1
09:20:01|c2|8008|Ivan|RINGNOANSWER|9000
09:20:10|c2|8008|PJSIP/101|CONNECT|10|c2.9|2
09:25:00|c3|8008|{N1}|QMTMISSED|BUSY|2
09:25:00|c3|8008|Ivan|RINGNOANSWER|100
09:25:30|c3|8008|{N1}|QMTMISSED|BUSY|2|same_call
09:25:30|c3|8008|Ivan|RINGNOANSWER|100
09:30:00|c4|8008|{N1}|QMTREJECT|2
09:30:00|c4|8008|{N1}|QMTMISSED|CONGESTION|3
09:30:00|c4|8008|Ivan|RINGNOANSWER|5000
09:30:00|NONE|NONE|Ivan|PAUSEALL|qmt-missed
09:30:00|NONE|8008|Ivan|PAUSE|qmt-missed
09:31:00|c4|8008|NONE|ABANDON|1|1|60
10:00:00|NONE|8008|Ivan|UNPAUSE|qmt-resumed
10:05:00|c5|8008|Ivan|RINGCANCELED|2000
10:07:00|c7|8008|{N1}|QMTRINGFAULT|CHANUNAVAIL|34
10:10:00|c6|8008|Ivan|CONNECT|3|c6.9|8
10:15:00|c6|8008|Ivan|COMPLETEAGENT|3|300|1
10:20:00|NONE|8008|Ivan|PAUSE|lunch
10:50:00|NONE|8008|Ivan|UNPAUSE|
11:00:00|2.1|8008|{IFACE1}|REMOVEMEMBER|
11:00:00|2.2|8008|PJSIP/101|REMOVEMEMBER|
"""


def epoch(moment, day=DAY):
    zone = report.local_zone(ZONE_NAME)[0]
    return int(datetime.datetime.fromisoformat(f"{day} {moment}").replace(tzinfo=zone).timestamp())


def qlog(text, day=DAY):
    """The fixture as queue_log text: a leading HH:MM:SS becomes the epoch of
    that time on `day`; any other line stays as it is."""
    return re.sub(r"(?m)^(\d\d:\d\d:\d\d)\|", lambda m: f"{epoch(m.group(1), day)}|", text)


def run(text, since="2026-12-01", until="2026-12-02", rows=TABLE_ROWS, queue=None, number=None, day=DAY):
    zone, name = report.local_zone(ZONE_NAME)
    window = report.window_of(since, until, zone, name, now=epoch("12:00:00"))
    agents = report.Agents(Settings.defaults().member_templates, rows)
    found = report.Report(window, agents, queue, number)
    counter = queue_log.Counter()
    lines = iter(qlog(text, day).splitlines(keepends=True))
    found.feed_all(entry for entry in map(queue_log.parse_line, lines) if entry is not None)
    return report.document(found, counter.read, counter.skipped)


def member(doc, number, queue="8008"):
    found = [row for row in doc["members"] if (row["number"], row["queue"]) == (number, queue)]
    assert len(found) == 1, doc["members"]
    return found[0]


# -- the line format ---------------------------------------------------------------------

def test_a_line_is_epoch_callid_queue_agent_event_and_its_data():
    entry = queue_log.parse_line("1796525653|1796525652.7|8008|Ivan|CONNECT|5|1796525652.9|4\n")
    assert entry == queue_log.Entry(1796525653.0, "1796525652.7", "8008", "Ivan", "CONNECT",
                                    ("5", "1796525652.9", "4"))


@pytest.mark.parametrize("line", ["", "17965", "1796525653|c1|8008|Iv", "garbage from another tool",
                                  "x796525653|c1|8008|Ivan|CONNECT|1", "1796525653|c1|8008|Ivan||1"])
def test_what_is_not_a_line_of_asterisk_is_no_entry(line):
    assert queue_log.parse_line(line) is None


# -- a working day ----------------------------------------------------------------------

def test_a_working_day_gives_the_sessions_pauses_and_calls_that_happened():
    row = member(run(WORKING_DAY), N1)
    assert (row["sessions"], row["first_login"], row["last_logout"]) == \
        (1, "2026-12-01 09:00:00+03:00", "2026-12-01 11:00:00+03:00")
    assert row["logged_in_s"] == 7200
    assert (row["paused_s"], row["paused_by_reason"]) == (3600, {"lunch": 1800, "qmt-missed": 1800})
    assert (row["rung"], row["accepted"], row["missed"]) == (6, 2, 3)
    assert row["missed_by_cause"] == {"busy": 1, "rejected": 1, "unconfirmed": 1}
    assert (row["rejected"], row["unconfirmed"], row["ring_faults"]) == (1, 1, 1)
    assert (row["talk_s"], row["median_ring_to_accept_s"]) == (420, 6.0)
    assert row["names"] == ["Ivan"]


def test_other_members_and_customer_lines_are_left_out():
    doc = run(WORKING_DAY)
    assert [(row["number"], row["queue"]) for row in doc["members"]] == [(N1, "8008")]
    assert doc["lines"]["other_members"] == 3                   # PJSIP/101: login, call, logout
    assert doc["queues"][0]["accepted"] == 2                    # not the desk phone's call


def test_times_are_shown_in_the_pbx_zone_with_the_zone_named():
    doc = run(WORKING_DAY)
    assert (doc["time_zone"], doc["since"], doc["until"]) == \
        (ZONE_NAME, "2026-12-01 00:00:00+03:00", "2026-12-02 00:00:00+03:00")
    assert "(Europe/Moscow)" in report.text_lines(doc)[0]


def test_the_queue_total_sums_its_numbers():
    text = WORKING_DAY + f"""\
09:00:00|3.1|8008|{IFACE2}|ADDMEMBER|
09:40:00|c8|8008|{N2}|CONNECT|2|c8.9|6
09:45:00|c8|8008|{N2}|COMPLETEAGENT|2|100|1
10:00:00|3.2|8008|{IFACE2}|REMOVEMEMBER|
"""
    doc = run(text)
    total = doc["queues"][0]
    assert (total["queue"], total["number"], total["sessions"]) == ("8008", "TOTAL", 2)
    assert (total["logged_in_s"], total["accepted"], total["talk_s"]) == (7200 + 3600, 3, 520)
    assert total["median_ring_to_accept_s"] == 6.0               # of 4, 6, 8


def test_days_split_time_at_local_midnight():
    text = f"""\
23:00:00|1.1|8008|{IFACE1}|ADDMEMBER|
"""
    doc = run(text + qlog(f"01:00:00|1.2|8008|{IFACE1}|REMOVEMEMBER|\n", "2026-12-02"),
              since="2026-12-01", until="2026-12-03")
    row = member(doc, N1)
    assert row["logged_in_s"] == 7200
    assert [(d["date"], d["logged_in_s"]) for d in row["days"]] == [("2026-12-01", 3600), ("2026-12-02", 3600)]


# -- the window ------------------------------------------------------------------------

def test_a_session_open_at_until_counts_up_to_it():
    text = f"09:00:00|1.1|8008|{IFACE1}|ADDMEMBER|\n09:10:00|NONE|8008|Ivan|PAUSE|lunch\n"
    row = member(run(text, until="2026-12-01 10:30"), N1)
    assert (row["logged_in_s"], row["paused_s"], row["last_logout"]) == (5400, 4800, None)
    assert row["session_list"] == [{"login": "2026-12-01 09:00:00+03:00", "logout": None, "open": True,
                                    "login_seen": True}]


def test_a_session_begun_before_since_counts_from_since_and_shows_its_login():
    text = qlog(f"22:00:00|1.1|8008|{IFACE1}|ADDMEMBER|\n", "2026-11-30") + \
        f"02:00:00|1.2|8008|{IFACE1}|REMOVEMEMBER|\n"
    row = member(run(text), N1)
    assert (row["logged_in_s"], row["first_login"]) == (7200, "2026-11-30 22:00:00+03:00")


def test_calls_outside_the_window_are_not_counted():
    row = member(run(WORKING_DAY, since="2026-12-01 09:22", until="2026-12-01 10:00"), N1)
    assert (row["accepted"], row["missed"], row["logged_in_s"]) == (0, 2, 2280)


def test_a_session_wholly_before_the_window_is_not_listed():
    doc = run(WORKING_DAY, since="2026-12-01 12:00", until="2026-12-01 13:00")
    assert doc["members"] == [] and doc["queues"] == []


# -- ugly logs ----------------------------------------------------------------------------

def test_a_restart_in_the_middle_of_a_session_keeps_it_and_is_counted():
    text = f"""\
09:00:00|1.1|8008|{IFACE1}|ADDMEMBER|
10:00:00|NONE|NONE|NONE|QUEUESTART|
10:30:00|c1|8008|Ivan|CONNECT|5|c1.9|4
11:00:00|1.2|8008|{IFACE1}|REMOVEMEMBER|
"""
    doc = run(text)
    row = member(doc, N1)
    assert (row["sessions"], row["logged_in_s"], row["accepted"], doc["restarts"]) == (1, 7200, 1, 1)


def test_a_login_repeated_in_an_open_session_changes_nothing():
    text = f"09:00:00|1.1|8008|{IFACE1}|ADDMEMBER|\n10:00:00|1.2|8008|{IFACE1}|ADDMEMBER|\n" \
           f"11:00:00|1.3|8008|{IFACE1}|REMOVEMEMBER|\n11:30:00|1.4|8008|{IFACE1}|REMOVEMEMBER|\n"
    row = member(run(text), N1)
    assert (row["sessions"], row["logged_in_s"]) == (1, 7200)


def test_a_member_logged_in_before_the_log_begins_counts_from_its_first_line():
    text = f"08:00:00|NONE|8008|PJSIP/101|PAUSE|\n09:00:00|c1|8008|Ivan|CONNECT|1|c1.9|3\n" \
           f"10:00:00|1.1|8008|{IFACE1}|REMOVEMEMBER|\n"
    row = member(run(text), N1)
    assert (row["logged_in_s"], row["accepted"]) == (7200, 1)
    assert row["session_list"][0]["login_seen"] is False


def test_a_cut_last_line_and_other_tools_lines_are_skipped(tmp_path):
    path = tmp_path / "queue_log"
    path.write_text(qlog(WORKING_DAY) + "not a queue_log line\n" + qlog("12:00:00|c9|8008|Iv"))
    counter = queue_log.Counter()
    entries = list(queue_log.file_entries([str(path)], counter))
    assert (counter.read, counter.skipped, len(entries)) == (len(WORKING_DAY.splitlines()) + 2, 2,
                                                           len(WORKING_DAY.splitlines()))


def test_a_number_the_table_no_longer_lists_still_appears():
    row = member(run(WORKING_DAY.replace("|Ivan|", f"|{N1}|"), rows=[]), N1)
    assert (row["logged_in_s"], row["accepted"], row["missed"], row["paused_s"]) == (7200, 2, 3, 3600)


def test_without_the_table_a_member_name_is_not_guessed():
    row = member(run(WORKING_DAY, rows=[]), N1)
    assert (row["logged_in_s"], row["missed"], row["accepted"], row["paused_s"]) == (7200, 3, 0, 0)


def test_a_name_two_numbers_share_in_a_queue_is_left_out():
    rows = [(N1, "8008", "Ivan"), (N2, "8008", "Ivan")]
    row = member(run(WORKING_DAY, rows=rows), N1)
    assert (row["accepted"], row["paused_s"]) == (0, 0)


def test_login_lines_with_the_member_name_are_read_through_the_table():
    # logger: log_membername_as_agent = yes
    row = member(run(WORKING_DAY.replace(f"|{IFACE1}|", "|Ivan|")), N1)
    assert (row["sessions"], row["logged_in_s"]) == (1, 7200)


def test_an_older_interface_is_the_same_number():
    row = member(run(WORKING_DAY.replace("@qmt-ring/", "@outbound-allroutes/")), N1)
    assert row["logged_in_s"] == 7200


def test_ring_path_lines_without_a_queue_go_to_the_one_queue_the_number_is_in():
    text = f"09:00:00|1.1|8010|{IFACE1}|ADDMEMBER|\n09:10:00|c1|NONE|{N1}|QMTMISSED|BUSY|1\n"
    assert member(run(text), N1, "8010")["missed_by_cause"] == {"busy": 1}


def test_filters_keep_one_queue_and_one_number():
    text = WORKING_DAY + f"09:00:00|3.1|8010|{IFACE2}|ADDMEMBER|\n09:00:00|3.2|8008|{IFACE2}|ADDMEMBER|\n"
    assert {(r["number"], r["queue"]) for r in run(text, queue="8010")["members"]} == {(N2, "8010")}
    assert {(r["number"], r["queue"]) for r in run(text, number=N2)["members"]} == {(N2, "8010"), (N2, "8008")}


# -- rotated files ------------------------------------------------------------------------

def test_rotated_copies_are_read_oldest_first_gzip_included(tmp_path):
    base = tmp_path / "queue_log"
    with gzip.open(f"{base}.2.gz", "wt") as old:
        old.write(qlog(f"09:00:00|1.1|8008|{IFACE1}|ADDMEMBER|\n"))
    (tmp_path / "queue_log.1").write_text(qlog("09:10:05|c1|8008|Ivan|CONNECT|5|c1.9|4\n"))
    base.write_text(qlog(f"11:00:00|1.2|8008|{IFACE1}|REMOVEMEMBER|\n"))
    (tmp_path / "queue_log.bak").write_text("not ours\n")
    files = queue_log.rotated_files(str(base))
    assert files == [f"{base}.2.gz", f"{base}.1", str(base)]
    zone, name = report.local_zone(ZONE_NAME)
    found = report.Report(report.window_of(DAY, "2026-12-02", zone, name, 0), report.Agents(
        Settings.defaults().member_templates, TABLE_ROWS))
    found.feed_all(queue_log.file_entries(files, queue_log.Counter()))
    row = member(report.document(found), N1)
    assert (row["logged_in_s"], row["accepted"]) == (7200, 1)


def test_dated_copies_come_before_numbered_ones(tmp_path):
    base = str(tmp_path / "queue_log")
    for tail in ("-20261202.gz", "-20261201", ".1"):
        open(base + tail, "w").close()
    assert queue_log.rotated_files(base) == [base + "-20261201", base + "-20261202.gz", base + ".1"]


# -- the table's rows -------------------------------------------------------------------------

def test_a_table_row_with_data1_to_data5_is_an_entry():
    zone = report.local_zone(ZONE_NAME)[0]
    where = {name: i for i, name in enumerate(("time", "callid", "queuename", "agent", "event", "data1", "data2",
                                               "data3", "data4", "data5"))}
    row = ("2026-12-01 09:10:05.123456", "c1", "8008", "Ivan", "CONNECT", "5", "c1.9", "4", "", "")
    assert queue_log.row_entry(row, where, zone) == queue_log.Entry(
        epoch("09:10:05") + 0.123456, "c1", "8008", "Ivan", "CONNECT", ("5", "c1.9", "4"))


def test_a_table_row_with_one_data_column_is_split_at_bars():
    where = {name: i for i, name in enumerate(("time", "callid", "queuename", "agent", "event", "data"))}
    moment = datetime.datetime(2026, 12, 1, 6, 10, 5)              # a DATETIME column, UTC
    entry = queue_log.row_entry((moment, "c1", "8008", "Ivan", "CONNECT", "5|c1.9|4"), where,
                                datetime.timezone.utc)
    assert (entry.time, entry.data) == (epoch("09:10:05"), ("5", "c1.9", "4"))


# -- the views ----------------------------------------------------------------------------

def test_csv_has_stable_columns_and_a_total_row_per_queue():
    rows = report.csv_rows(run(WORKING_DAY))
    assert rows[0] == list(report.CSV_COLUMNS)
    assert [(r[0], r[1]) for r in rows[1:]] == [("8008", N1), ("8008", "TOTAL")]
    assert rows[1][rows[0].index("missed_by_cause")] == "busy=1;rejected=1;unconfirmed=1"


def test_csv_cells_from_the_log_cannot_be_formulas():
    assert report.csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and report.csv_cell("8008") == "8008"


HOSTILE = '<script>alert(1)</script>"'


def test_the_page_escapes_every_name_from_the_log_and_fetches_nothing():
    text = WORKING_DAY.replace("|8008|", f"|{HOSTILE}|").replace("|Ivan|", f"|{N1}|")
    page = report_html.page(run(text, rows=[]))
    assert "<script" not in page and html.escape(HOSTILE, quote=True) in page
    assert not re.search(r"https?:|src=|href=|@import|url\(", page)
    assert "default-src 'none'" in page


def test_the_page_has_a_chart_per_number_with_a_bar_per_day_and_figure():
    text = WORKING_DAY + f"09:00:00|3.1|8010|{IFACE2}|ADDMEMBER|\n"
    page = report_html.page(run(text, until="2026-12-03"))
    assert page.count('<svg class="chart"') == 2
    assert len(re.findall(r'<rect class="accepted" data-day="2026-12-01" data-value="2"', page)) == 1
    assert len(re.findall(r'<rect class="missed" data-day="2026-12-01" data-value="3"', page)) == 1
    assert len(re.findall(r'<rect class="logged"', page)) == 4        # 2 numbers x 2 days


@pytest.mark.parametrize("values, middle", [([4], 4.0), ([4, 8], 6.0), ([3, 3, 9], 3.0), ([1, 2, 9, 9], 5.5),
                                            ([], None)])
def test_the_median_ring_time_is_that_of_the_accepted_calls(values, middle):
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    assert report.median(counts) == middle


def test_a_call_that_rang_the_mailbox_twice_counts_once():
    text = f"""\
09:00:00|1.1|8008|{IFACE1}|ADDMEMBER|
09:10:00|c1|8008|{N1}|QMTNOCONFIRM|TIMEOUT
09:10:00|c1|8008|{N1}|QMTMISSED|CONGESTION|1
09:10:00|c1|8008|Ivan|RINGNOANSWER|9000
09:10:20|c1|8008|{N1}|QMTNOCONFIRM|TIMEOUT
09:10:20|c1|8008|{N1}|QMTMISSED|CONGESTION|1|same_call
09:10:20|c1|8008|Ivan|RINGNOANSWER|9000
"""
    row = member(run(text), N1)
    assert (row["rung"], row["unconfirmed"], row["missed_by_cause"]) == (1, 1, {"unconfirmed": 1})


def test_without_persistent_members_a_restart_ends_the_session_at_the_last_line_before_it():
    text = f"""\
09:00:00|1.1|8008|{IFACE1}|ADDMEMBER|
09:30:00|c1|8008|Ivan|RINGNOANSWER|100
10:00:00|NONE|NONE|NONE|QUEUESTART|
11:00:00|1.2|8008|{IFACE1}|REMOVEMEMBER|
"""
    zone, name = report.local_zone(ZONE_NAME)
    found = report.Report(report.window_of(DAY, "2026-12-02", zone, name, 0),
                          report.Agents(Settings.defaults().member_templates, TABLE_ROWS), persistent=False)
    found.feed_all(map(queue_log.parse_line, qlog(text).splitlines()))
    row = member(report.document(found), N1)
    assert (row["logged_in_s"], row["last_logout"]) == (1800, "2026-12-01 09:30:00+03:00")


def test_a_log_that_begins_with_a_logout_has_no_session():
    doc = run(f"09:00:00|1.2|8008|{IFACE1}|REMOVEMEMBER|\n")
    assert doc["members"] == []


def test_the_text_shows_no_control_character_from_the_log():
    text = WORKING_DAY.replace("|8008|", "|8008\x1b]0;owned\x07|").replace("|Ivan|", "|Iv\x1b[2Jan|")
    rows = [(N1, "8008\x1b]0;owned\x07", "Iv\x1b[2Jan")]
    lines = "\n".join(report.text_lines(run(text, rows=rows)))
    assert "\x1b" not in lines and "\x07" not in lines and "queue 8008?]0;owned?" in lines
