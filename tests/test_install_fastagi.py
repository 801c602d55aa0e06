"""install.sh --fastagi / --no-fastagi, in a temporary folder standing for
"/": the unit file and its manifest entry, and when the dialplan's switch
(astdb qmt-fastagi/port) is turned on, kept or off. Asterisk, systemd and
the server are stand-ins that record what they were asked."""

import io
import os

import pytest

from qmt.install import fastagi
from qmt.install.facts import CONFIG, FASTAGI_UNIT_FILE, MANIFEST
from qmt.install.files import SafeFiles
from qmt.install.install import Install
from qmt.install.manifest import Manifest
from qmt.install.report import InstallError, Report
from qmt.install.steps import Options
from qmt.install.uninstall import Uninstall


class Box:
    """The stand-ins: astdb, systemd, the server, and what each was asked, in order."""

    def __init__(self, top, monkeypatch):
        self.top = top
        self.astdb = {}
        self.asked = []
        self.systemd = False
        self.asterisk = True
        self.server = ""                 # the version a probe answers; "" = no server
        monkeypatch.setattr(fastagi, "systemd_running", lambda: self.systemd)
        monkeypatch.setattr(fastagi, "quiet", self.systemctl)
        monkeypatch.setattr(fastagi.asterisk, "running", lambda: self.asterisk)
        monkeypatch.setattr(fastagi.asterisk, "cli", self.cli)
        monkeypatch.setattr(fastagi, "astdb_family", lambda family: {
            key.split("/", 1)[1]: value for key, value in self.astdb.items() if key.startswith(family + "/")})
        monkeypatch.setattr(fastagi, "answer_within", lambda port, seconds: self.server)
        monkeypatch.setattr(fastagi, "probe", lambda port, timeout: self.server)

    def systemctl(self, command):
        self.asked.append(" ".join(command))
        return True

    def cli(self, command):
        self.asked.append(command)
        words = command.split()
        if words[:2] == ["database", "put"]:
            self.astdb["/".join(words[2:4])] = words[4]
        elif words[:2] == ["database", "del"]:
            self.astdb.pop("/".join(words[2:4]), None)
        return ""

    def path(self, inside):
        return self.top / inside.lstrip("/")

    def config(self, text):
        self.path(CONFIG).write_text(text)


@pytest.fixture
def box(tmp_path, monkeypatch):
    tmp_path.chmod(0o755)
    for folder in ("etc/asterisk", "etc/systemd/system", "opt/queue-mobile-toggle"):
        (tmp_path / folder).mkdir(parents=True)
    return Box(tmp_path, monkeypatch)


def install(box, fastagi_option, package_changed=False):
    out = io.StringIO()
    run = Install(Options(fastagi=fastagi_option, package_changed=package_changed),
                  SafeFiles(os.getuid(), "asterisk", top=str(box.top)), Report(out=out))
    run.install_fastagi()
    return run, out.getvalue().splitlines()


def test_the_unit_runs_qmt_serve_as_asterisk_restarted_on_failure_and_hardened():
    unit = fastagi.unit_text().splitlines()
    for line in ("User=asterisk", "Group=asterisk", "ExecStart=/opt/queue-mobile-toggle/venv/bin/qmt serve",
                 "Restart=on-failure", "After=network.target asterisk.service", "NoNewPrivileges=yes",
                 "PrivateTmp=yes", "ProtectSystem=full", "WantedBy=multi-user.target"):
        assert line in unit, line
    # strict would make /var read-only: a SQLite allowlist's journal, a log file the config names
    assert "ProtectSystem=strict" not in unit


def test_without_systemd_the_unit_is_written_and_recorded_but_the_mode_stays_off(box):
    run, lines = install(box, "on")
    assert box.path(FASTAGI_UNIT_FILE).read_text() == fastagi.unit_text()
    assert oct(box.path(FASTAGI_UNIT_FILE).stat().st_mode & 0o777) == "0o644"
    assert lines[0] == f"[changed] fastagi: installed {FASTAGI_UNIT_FILE} (mode 644, root:root)"
    assert lines[1].startswith("[note]    fastagi: systemd is not running here") and \
        "runuser -u asterisk -- /opt/queue-mobile-toggle/venv/bin/qmt serve" in lines[1]
    assert lines[2] == ("[note]    fastagi: not turned on: no answer from qmt serve at 127.0.0.1:4573, so the"
                        " dialplan runs the classic script")
    assert box.astdb == {} and not any(a.startswith("systemctl") for a in box.asked)
    run.write_manifest()
    assert Manifest(box.path(MANIFEST).read_text()).get("fastagi_unit") == FASTAGI_UNIT_FILE
    _, again = install(box, "on")
    assert again[0] == f"[ok]      fastagi: {FASTAGI_UNIT_FILE} unchanged"


def test_a_server_that_answers_turns_the_mode_on_at_the_configs_port(box):
    box.config("[fastagi]\nport = 4600\n")
    box.server = "0.3.0"
    _, lines = install(box, "on")
    assert box.astdb == {"qmt-fastagi/port": "4600"}
    assert lines[-1] == ("[changed] fastagi: on, the dialplan asks qmt serve 0.3.0 at 127.0.0.1:4600"
                         " (astdb qmt-fastagi/port)")
    _, again = install(box, "on")
    assert again[-1] == "[ok]      fastagi: on, the dialplan asks qmt serve 0.3.0 at 127.0.0.1:4600"


def test_with_systemd_the_unit_is_enabled_and_started_before_the_switch_is_set(box):
    box.systemd = True
    box.server = "0.3.0"
    install(box, "on")
    put = box.asked.index("database put qmt-fastagi port 4573")
    assert box.asked.index("systemctl enable --now qmt-fastagi.service") < put
    assert box.asked.index("systemctl daemon-reload") < put


def test_a_new_package_or_a_silent_server_restarts_the_unit(box):
    box.systemd = True
    box.server = "0.3.0"
    install(box, "on")
    box.asked.clear()
    _, lines = install(box, "", package_changed=True)        # the mode is kept: the unit stays up to date
    assert "systemctl restart qmt-fastagi.service" in box.asked
    assert "[changed] fastagi: qmt-fastagi.service restarted (a new version or unit)" in lines
    box.asked.clear()
    install(box, "")
    assert "systemctl restart qmt-fastagi.service" not in box.asked
    box.server = ""                 # e.g. the config's port changed: it reads the config at start only
    _, lines = install(box, "")
    assert "[changed] fastagi: qmt-fastagi.service restarted (no answer at 127.0.0.1:4573)" in lines


def test_fastagi_is_not_left_on_when_its_server_no_longer_answers(box):
    box.astdb["qmt-fastagi/port"] = "4573"
    _, lines = install(box, "on")
    assert box.astdb == {}
    assert "[changed] fastagi: off, the dialplan runs the classic script (no server answers at 127.0.0.1:4573)" \
        in lines


def test_an_install_without_the_option_keeps_the_mode_as_it_is(box):
    _, lines = install(box, "")
    assert lines == ["[ok]      fastagi: off, the dialplan runs the classic script (install.sh --fastagi turns the"
                     " server on)"]
    assert not box.path(FASTAGI_UNIT_FILE).exists() and box.astdb == {}
    # on, with its server down for a moment: the switch stays (calls fall back), and the run says so
    box.astdb["qmt-fastagi/port"] = "4573"
    _, lines = install(box, "")
    assert box.astdb == {"qmt-fastagi/port": "4573"}
    assert lines[-1].startswith("[note]    fastagi: no answer from qmt serve at 127.0.0.1:4573: calls fall back to"
                                " the classic script")


def test_no_fastagi_deletes_the_switch_first_then_stops_and_removes_the_unit(box):
    box.systemd = True
    box.server = "0.3.0"
    install(box, "on")
    box.asked.clear()
    run, lines = install(box, "off")
    assert box.astdb == {} and not box.path(FASTAGI_UNIT_FILE).exists()
    assert box.asked.index("database del qmt-fastagi port") < \
        box.asked.index("systemctl disable --now qmt-fastagi.service")
    assert lines == [
        "[changed] fastagi: off, the dialplan runs the classic script (astdb qmt-fastagi/port deleted)",
        f"[changed] fastagi: stopped and removed {FASTAGI_UNIT_FILE}"]
    run.write_manifest()
    assert Manifest(box.path(MANIFEST).read_text()).get("fastagi_unit") == ""


@pytest.mark.parametrize("port", ["45x", "0", "70000", "4573;x"])
def test_a_config_port_that_is_no_port_stops_the_run(box, port):
    box.config(f"[fastagi]\nport = {port}\n")
    with pytest.raises(InstallError, match=r"\[fastagi\] port in .* is '.*', not a port"):
        install(box, "on")
    assert box.astdb == {}


def test_uninstall_removes_the_unit(box):
    install(box, "on")
    out = io.StringIO()
    run = Uninstall(Options(), SafeFiles(os.getuid(), "asterisk", top=str(box.top)), Report(out=out))
    fastagi.FastAgi(run).remove_unit()
    assert not box.path(FASTAGI_UNIT_FILE).exists()
    assert out.getvalue() == f"[changed] fastagi: stopped and removed {FASTAGI_UNIT_FILE}\n"
