"""qmt.asterisk_cli: `asterisk -rx` read as Asterisk answers it, with a
stand-in `asterisk` on PATH (tests/e2e proves the real one)."""

import pytest

from qmt import asterisk_cli as cli

EID_WARNING = "No ethernet interface found for seeding global EID. You will need to set it manually."
FOUND = "[ Context 'outbound-allroutes' created by 'pbx_config' ]\n  '_X.' =>  1. Dial(...)\n\n" \
        "-= 1 extension (1 priority) in 1 context. =-\n"


@pytest.fixture
def answering(tmp_path, monkeypatch):
    """answering(text, status=0): `asterisk` prints text and exits with status."""
    def install(text, status=0):
        (tmp_path / "answer").write_text(text, encoding="utf-8")
        script = tmp_path / "asterisk"
        script.write_text("#!/bin/sh\ncat '%s'\nexit %d\n" % (tmp_path / "answer", status), encoding="utf-8")
        script.chmod(0o755)
        monkeypatch.setenv("PATH", "%s:/usr/bin:/bin" % tmp_path)
    return install


def test_the_eid_warning_before_an_answer_is_not_part_of_it(answering):
    answering(EID_WARNING + "\n" + "Updated database successfully\n")
    assert cli.asterisk_cli("database put a b c") == "Updated database successfully\n"


def test_a_box_without_ethernet_still_reads_astdb_and_the_route(answering):
    answering(EID_WARNING + "\n/qmt-pin/79001234567                             : 0,0,0\n1 results found.\n")
    assert cli.astdb_family("qmt-pin") == {"79001234567": "0,0,0"}
    answering(EID_WARNING + "\n" + FOUND)
    assert cli.route_dials("outbound-allroutes", "79001234567") is True


def test_only_leading_warning_lines_are_dropped(answering):
    answering("first line\n" + EID_WARNING + "\n")
    assert cli.asterisk_cli("core show version") == "first line\n" + EID_WARNING + "\n"


def test_an_answer_neither_found_nor_missing_is_an_error_not_a_no(answering):
    answering(EID_WARNING + "\nsomething else entirely\n")
    with pytest.raises(cli.AsteriskCliError, match="not understood"):
        cli.route_dials("outbound-allroutes", "79001234567")


def test_asterisk_not_running_is_an_error(answering):
    answering("Unable to connect to remote asterisk (does /var/run/asterisk/asterisk.ctl exist?)\n", status=1)
    with pytest.raises(cli.AsteriskCliError, match="is it running"):
        cli.asterisk_cli("core show version")


def test_a_route_or_number_with_other_characters_never_reaches_the_command_line():
    with pytest.raises(ValueError):
        cli.route_dials("outbound-allroutes", "7900;1234")
    with pytest.raises(ValueError):
        cli.route_dials("ctx@other", "79001234567")
