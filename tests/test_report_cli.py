"""`qmt report` as the admin runs it: the file with the member names from
the real SQLite3 ODBC allowlist, a queue_log table through the real ODBC
drivers (SQLite3 here; MariaDB and PostgreSQL in the servers layer), the
CSV, and the HTML page as Debian's Chromium shows it."""

import csv
import datetime
import io
import json
import re
import shutil
import sqlite3
import subprocess

import pytest

from qmt import report as qmt_report
from support import SQLITE_DRIVER
from test_cli import assert_one_line_error, qmt
from test_report import N1, WORKING_DAY, ZONE_NAME, qlog

pytest.register_assert_rewrite("dbservers")
from dbservers import BACKENDS, make_toggle  # noqa: E402

pytest_plugins = ["dbservers"]

WINDOW = ["--tz", ZONE_NAME, "--since", "2026-12-01", "--until", "2026-12-02"]
CHROMIUM = shutil.which("chromium")


@pytest.fixture
def named(toggle):
    toggle.allowlist.add(N1, "8008", member_name="Ivan")
    return toggle


def queue_log_file(tmp_path, text=WORKING_DAY):
    path = tmp_path / "queue_log"
    path.write_text(qlog(text))
    return str(path)


def report(toggle, *args):
    result = qmt(toggle, "report", *WINDOW, *args)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def figures_of(row):
    return (row["logged_in_s"], row["paused_s"], row["accepted"], row["missed"], row["rejected"],
            row["unconfirmed"], row["talk_s"])


WORKING_DAY_FIGURES = (7200, 3600, 2, 3, 1, 1, 420)


def test_report_reads_the_file_with_the_tables_member_names(named, tmp_path):
    result = report(named, "--json", "--queue-log", queue_log_file(tmp_path))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [figures_of(row) for row in doc["members"]] == [WORKING_DAY_FIGURES]
    assert doc["time_zone"] == ZONE_NAME


def test_report_text_names_the_zone_and_the_figures(named, tmp_path):
    result = report(named, "--queue-log", queue_log_file(tmp_path))
    assert result.returncode == 0
    assert "(Europe/Moscow)" in result.stdout.splitlines()[0]
    assert f"{N1} (Ivan): logged in 2:00:00 in 1 session(s), paused 1:00:00" in result.stdout


def test_report_goes_on_without_the_table_and_says_so(named, tmp_path):
    named.configure(connection="DSN=qmt_missing")
    result = report(named, "--json", "--queue-log", queue_log_file(tmp_path))
    assert result.returncode == 0
    assert "member names are not known" in result.stderr
    assert json.loads(result.stdout)["members"][0]["accepted"] == 0    # Ivan's CONNECTs are not his number's


def test_report_csv_is_a_row_per_number_and_queue_then_the_total(named, tmp_path):
    result = report(named, "--csv", "--queue-log", queue_log_file(tmp_path))
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["queue"], r["number"], r["accepted"], r["logged_in_s"]) for r in rows] == \
        [("8008", N1, "2", "7200"), ("8008", "TOTAL", "2", "7200")]


@pytest.mark.parametrize("args, words", [
    (["--since", "monday"], "give YYYY-MM-DD"),
    (["--since", "2026-12-02", "--until", "2026-12-01"], "--until must be after --since"),
    (["--tz", "Mars/Olympus"], "Mars/Olympus"),
    (["--odbc", "qmt_test", "--table", "queue_log; DROP TABLE x"], "--table"),
])
def test_report_refuses_bad_arguments_with_exit_2(named, tmp_path, args, words):
    result = qmt(named, "report", "--queue-log", queue_log_file(tmp_path), *args)
    assert_one_line_error(result, 2, words)


def test_report_without_a_queue_log_is_exit_3(named, tmp_path):
    assert_one_line_error(report(named, "--queue-log", str(tmp_path / "none")), 3, "no queue_log")


# -- the queue_log table through ODBC -----------------------------------------------------

ADAPTIVE = ("CREATE TABLE queue_log (id INTEGER PRIMARY KEY, time VARCHAR(26), callid VARCHAR(32), "
            "queuename VARCHAR(32), agent VARCHAR(64), event VARCHAR(32), data1 VARCHAR(100), data2 VARCHAR(100), "
            "data3 VARCHAR(100), data4 VARCHAR(100), data5 VARCHAR(100))")
ONE_DATA = ("CREATE TABLE qlog (id INTEGER PRIMARY KEY, time DATETIME, callid VARCHAR(32), queuename VARCHAR(32), "
            "agent VARCHAR(64), event VARCHAR(32), data VARCHAR(200))")


def table_rows(text):
    """The lines as Asterisk's ODBC queue_log stores them: local time text
    with microseconds, data split in data1..5."""
    zone = qmt_report.local_zone(ZONE_NAME)[0]
    for line in qlog(text).splitlines():
        fields = line.split("|")
        moment = datetime.datetime.fromtimestamp(int(fields[0]), zone).strftime("%Y-%m-%d %H:%M:%S.000000")
        yield [moment] + fields[1:5] + (fields[5:] + [""] * 5)[:5], "|".join(fields[5:])


@pytest.mark.parametrize("layout", ["data1..data5", "data"])
def test_report_reads_a_queue_log_table_through_odbc(named, tmp_path, layout):
    database = tmp_path / "asteriskcdr.sqlite"
    with sqlite3.connect(database) as db:
        if layout == "data":
            db.execute(ONE_DATA)
            for row, data in reversed(list(table_rows(WORKING_DAY))):      # ORDER BY time puts them right
                db.execute("INSERT INTO qlog (time, callid, queuename, agent, event, data) VALUES (?,?,?,?,?,?)",
                           row[:5] + [data])
        else:
            db.execute(ADAPTIVE)
            for row, _ in table_rows(WORKING_DAY):
                db.execute("INSERT INTO queue_log (time, callid, queuename, agent, event, data1, data2, data3, "
                           "data4, data5) VALUES (?,?,?,?,?,?,?,?,?,?)", row)
    table = ["--table", "qlog"] if layout == "data" else []
    result = report(named, "--json", "--odbc", f"Driver={SQLITE_DRIVER};Database={database}", *table)
    assert result.returncode == 0, result.stderr
    assert [figures_of(row) for row in json.loads(result.stdout)["members"]] == [WORKING_DAY_FIGURES]


def test_a_missing_queue_log_table_is_exit_3_in_one_line(named, tmp_path):
    database = tmp_path / "empty.sqlite"
    sqlite3.connect(database).close()
    result = report(named, "--odbc", f"Driver={SQLITE_DRIVER};Database={database}")
    assert_one_line_error(result, 3, "queue_log table: db_table_missing")


# -- the page in a real browser ---------------------------------------------------------------

def chromium(page_path, tmp_path, *extra):
    """Debian's Chromium on the page, offline profile, headless: its stdout."""
    if CHROMIUM is None:
        pytest.fail("Debian's chromium is not installed (tests/run.sh installs it)")
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=%s" % (tmp_path / "c"),
         "--virtual-time-budget=2000", *extra, "--dump-dom", "file://" + page_path],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_page_in_chromium_shows_each_numbers_figures_and_chart(named, tmp_path):
    text = WORKING_DAY.replace("|8008|", '|8008<script>alert("x")</script>|').replace("|Ivan|", f"|{N1}|") + \
        "09:00:00|3.1|8010|Local/79115550002@qmt-ring/n|ADDMEMBER|\n"
    page = str(tmp_path / "report.html")
    result = report(named, "--html", page, "--queue-log", queue_log_file(tmp_path, text))
    assert result.returncode == 0 and result.stdout == "", result.stderr
    dom = chromium(page, tmp_path)
    assert "<script>alert" not in dom and "8008&lt;script&gt;alert" in dom
    row = re.search(r'<tr class="member" data-number="%s">(.*?)</tr>' % N1, dom).group(1)
    cells = dict(re.findall(r'<td class="([\w-]+)">(.*?)</td>', row))
    assert (cells["logged-in"], cells["accepted"]) == ("2:00:00", "2")
    assert cells["missed"] == "3 (busy 1, rejected 1, unconfirmed 1)"
    assert re.findall(r'<svg class="chart" data-number="(\d+)"', dom) == [N1, "79115550002"]
    # On a day of 2 accepted and 3 missed calls, the bars stand 2:3 on a 120-pixel chart.
    heights = dict(re.findall(r'<rect class="(accepted|missed)" data-day="2026-12-01" data-value="\d+" x="\d+" '
                              r'y="[\d.]+" width="10" height="([\d.]+)"', dom)[:2])
    assert heights == {"accepted": "80", "missed": "120"}


def page_requests(page_path, tmp_path):
    """The URLs the page itself asked for (not the browser's own requests,
    whose initiator is 'not an origin'), from Chromium's net log."""
    netlog = tmp_path / "net.json"
    chromium(page_path, tmp_path, "--log-net-log=%s" % netlog)
    events = json.loads(netlog.read_text())["events"]
    return {event["params"]["url"] for event in events
            if event.get("params", {}).get("initiator") not in (None, "not an origin")
            and "url" in event["params"] and not event["params"]["url"].startswith("file:")}


def test_the_page_makes_no_network_request(named, tmp_path):
    page = str(tmp_path / "report.html")
    assert report(named, "--html", page, "--queue-log", queue_log_file(tmp_path)).returncode == 0
    assert page_requests(page, tmp_path) == set()
    # The same check sees a page that does fetch something.
    fetching = tmp_path / "fetching.html"
    fetching.write_text('<html><body><img src="http://127.0.0.1:9/x.png"></body></html>')
    assert page_requests(str(fetching), tmp_path) == {"http://127.0.0.1:9/x.png"}


# -- the table on every backend (MariaDB and PostgreSQL: the servers layer) ---------------------

TIME_COLUMN = {"sqlite": "VARCHAR(26)", "mariadb": "DATETIME(6)", "postgresql": "TIMESTAMP"}


@pytest.fixture(params=BACKENDS)
def backend_queue_log(request, tmp_path, odbc):
    """A queue_log table of Asterisk's adaptive layout on the backend, filled
    with the working day (DATETIME values where the column is one); the
    connection string of an account that may read it."""
    toggle = make_toggle(request.param, request, tmp_path, odbc)
    toggle.allowlist.add(N1, "8008", member_name="Ivan")
    db = toggle.allowlist
    db.execute("DROP TABLE IF EXISTS qmt_test_queue_log")
    db.execute("CREATE TABLE qmt_test_queue_log (time %s, callid VARCHAR(32), queuename VARCHAR(32), agent "
               "VARCHAR(64), event VARCHAR(32), data1 VARCHAR(100), data2 VARCHAR(100), data3 VARCHAR(100), "
               "data4 VARCHAR(100), data5 VARCHAR(100))" % TIME_COLUMN[request.param])
    for row, _ in table_rows(WORKING_DAY):
        if request.param != "sqlite":
            row[0] = datetime.datetime.strptime(row[0], "%Y-%m-%d %H:%M:%S.%f")
        db.execute("INSERT INTO qmt_test_queue_log VALUES (?,?,?,?,?,?,?,?,?,?)", *row)
    yield toggle, db.connection_string
    db.execute("DROP TABLE qmt_test_queue_log")


def test_report_reads_the_queue_log_table_on_each_backend(backend_queue_log):
    toggle, connection = backend_queue_log
    result = report(toggle, "--json", "--odbc", connection, "--table", "qmt_test_queue_log")
    assert result.returncode == 0, result.stderr
    assert [figures_of(row) for row in json.loads(result.stdout)["members"]] == [WORKING_DAY_FIGURES]


def test_report_html_to_stdout_for_a_root_shell_redirection(named, tmp_path):
    result = report(named, "--html", "-", "--queue-log", queue_log_file(tmp_path))
    assert result.returncode == 0 and result.stdout.startswith("<!DOCTYPE html>")
    assert result.stdout.count('<svg class="chart"') == 1
