"""qmt.install.ini: the installer's line-preserving INI editor. What an edit
does not concern comes back byte for byte; names compare case-insensitively."""

from hypothesis import given
from hypothesis import strategies as st

from qmt.install import ini

ODBC = """\
; the admin's DSNs
[qmt_mariadb]
Driver = MariaDB Unicode
Server=db.example   ; a comment after the value

[Queue_Mobile_Toggle]
Description = queue-mobile-toggle allowlist (added by install.sh)
Driver = SQLite3
Database = /var/lib/asterisk/queue_mobile_toggle.sqlite
[other]
Driver = x
"""

MANAGER = """\
[general]\r
enabled = no\r
port => 5038\r
#include manager_custom.conf\r
"""

LINES = st.sampled_from(["[general]", "[Ami]", "  [ami] ", "enabled = yes", "port=5038", "  secret =  s ; c",
                         "; comment", "#include x.conf", "", "   ", "no equals here", "key => value", "[bad",
                         "é = ü", "k = \t"])


@st.composite
def ini_texts(draw):
    lines = draw(st.lists(LINES, max_size=12))
    ends = draw(st.lists(st.sampled_from(["\n", "\r\n"]), min_size=len(lines), max_size=len(lines)))
    text = "".join(line + end for line, end in zip(lines, ends))
    if text and draw(st.booleans()):
        text = text.rstrip("\r\n")          # a last line without its end
    return text


def test_a_value_is_found_whatever_the_case_of_section_and_key():
    assert ini.value(ODBC, "queue_mobile_toggle", "DATABASE") == "/var/lib/asterisk/queue_mobile_toggle.sqlite"
    assert ini.value(ODBC, "QMT_MARIADB", "driver") == "MariaDB Unicode"


def test_a_value_keeps_what_follows_it_on_the_line_as_the_installer_always_did():
    assert ini.value(ODBC, "qmt_mariadb", "Server") == "db.example   ; a comment after the value"


def test_a_missing_key_or_section_has_an_empty_value():
    assert ini.value(ODBC, "qmt_mariadb", "Database") == ""
    assert ini.value(ODBC, "nowhere", "Driver") == ""


def test_a_key_before_any_section_is_in_none():
    assert ini.value("Driver = x\n[s]\n", "s", "Driver") == ""


def test_has_section_compares_names_case_insensitively():
    assert ini.has_section(ODBC, "QUEUE_MOBILE_TOGGLE")
    assert not ini.has_section(ODBC, "queue_mobile")


def test_without_section_drops_its_header_and_lines_up_to_the_next_header_only():
    out = ini.without_section(ODBC, "queue_mobile_toggle")
    assert "Queue_Mobile_Toggle" not in out and "SQLite3" not in out
    assert out.startswith("; the admin's DSNs\n[qmt_mariadb]\n") and out.endswith("[other]\nDriver = x\n")


def test_without_section_drops_every_section_of_that_name():
    assert ini.without_section("[a]\nx=1\n[b]\ny=2\n[A]\nz=3\n", "a") == "[b]\ny=2\n"


def test_with_value_sets_every_existing_key_and_keeps_the_lines_start_and_end():
    out = ini.with_value(MANAGER, "GENERAL", "Enabled", "yes")
    assert out == MANAGER.replace("enabled = no", "enabled = yes")


def test_with_value_adds_nothing_when_the_key_is_missing():
    assert ini.with_value(MANAGER, "general", "bindaddr", "127.0.0.1") == MANAGER


def test_with_key_replaces_the_first_key_line():
    out = ini.with_key("[ami]\nPort = 1\nport = 2\n", "ami", "port", "5038")
    assert out == "[ami]\nport = 5038\nport = 2\n"


def test_with_key_adds_a_missing_key_right_under_the_header_before_any_include():
    out = ini.with_key(MANAGER, "general", "bindaddr", "127.0.0.1")
    assert out == "[general]\r\nbindaddr = 127.0.0.1\nenabled = no\r\nport => 5038\r\n#include manager_custom.conf\r\n"


def test_with_key_leaves_a_file_without_the_section_as_it_is():
    assert ini.with_key(ODBC, "general", "enabled", "yes") == ODBC


def test_a_key_set_with_arrow_syntax_is_read_by_its_name():
    assert ini.key_of("port => 5038") == "port"


def test_without_lines_removes_only_matching_lines():
    text = "[x]\n#include a.conf\r\nkeep\n#include a.conf"
    assert ini.without_lines(text, lambda line: line == "#include a.conf") == "[x]\nkeep\n"


def test_ended_ends_a_last_line_once():
    assert ini.ended("[qmt]\nsecret = s") == "[qmt]\nsecret = s\n"
    assert ini.ended("x\n") == "x\n" and ini.ended("") == ""


def test_a_template_header_keeps_its_marks_in_its_name():
    assert ini.section_name("[directories](!) ; stock\n") == "directories](!) ; stock"
    assert ini.section_name("  [general]  \n") == "general"
    assert ini.section_name("general\n") is None


@given(ini_texts(), st.sampled_from(["ami", "general", "none"]), st.sampled_from(["port", "secret", "x"]))
def test_edits_leave_every_line_of_other_sections_byte_for_byte(text, section, key):
    def others(t):
        return [line for name, line in ini.sections(ini.split_lines(t))
                if name is None or not ini.same_name(name, section)]
    for edited in (ini.with_value(text, section, key, "v"), ini.without_section(text, section)):
        assert others(edited) == others(text)


@given(ini_texts(), st.sampled_from(["ami", "general", "none"]), st.sampled_from(["port", "secret", "x"]))
def test_with_key_changes_at_most_one_line_and_adds_at_most_one(text, section, key):
    before, after = ini.split_lines(text), ini.split_lines(ini.with_key(text, section, key, "v"))
    assert len(after) - len(before) in (0, 1)
    if ini.has_section(text, section):
        assert ini.value(ini.with_key(text, section, key, "v"), section, key) == "v"
    else:
        assert after == before


@given(ini_texts())
def test_an_edit_that_finds_nothing_returns_the_text_unchanged(text):
    assert ini.with_value(text, "absent", "port", "v") == text
    assert ini.without_section(text, "absent") == text
    assert ini.without_lines(text, lambda line: False) == text
    assert "".join(ini.split_lines(text)) == text
