"""install.sh against a hostile asterisk user and a hostile working folder
(issue 7, items 2, 3, 5 and 9), inside the Debian sid chroot."""

import shlex

import e2elib as L

CONF = "/etc/asterisk/queue_mobile_toggle.conf"
CUSTOM = "/etc/asterisk/extensions_custom.conf"
EXTENSIONS = "/etc/asterisk/extensions.conf"
ODBC_INI = "/etc/odbc.ini"
DB = L.SQLITE_DB
SCRIPT = "queue_mobile_toggle.py"
PREFIX = "/opt/queue-mobile-toggle"
MANIFEST = PREFIX + "/install.manifest"
INCLUDE = "#include extensions_queue_mobile_toggle.conf"
INSTALL = ("--wheelhouse", L.WHEELS_IN_ROOT, "--no-apt")


def fingerprint(root, path):
    """Bytes, mode, owner and link count of path (not following a link), or None."""
    p = root.sh(f"test -e {path} || test -L {path} || exit 3; "
                f"sha256sum < {path}; stat -c '%F %a %U:%G %h' {path}")
    if p.returncode == 3:
        return None
    assert p.returncode == 0, p.stderr
    return p.stdout


def installed(root, *args):
    p = root.install(*INSTALL, *args)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def error_lines(p):
    return [line for line in p.stderr.splitlines() if line.strip()]


# ---------------------------------- item 3: nothing imported from the cwd
PLANTED_MODULES = ("pyodbc", "configparser", "sqlite3", "venv", "pip", "asterisk", "sitecustomize",
                   "usercustomize")
MARKERS = "/tmp/qmt-planted"


def test_python_never_imports_from_the_working_folder(throwaway_root):
    root = throwaway_root
    root.sh(f"mkdir -m 1777 {MARKERS}", check=True)
    where = "/var/lib/asterisk"             # the asterisk user's own folder
    for mod in PLANTED_MODULES:
        root.write(f"{where}/{mod}.py",
                   f"import os\nopen('{MARKERS}/{mod}.%d' % os.getuid(), 'w').close()\n")
        root.sh(f"chown asterisk:asterisk {where}/{mod}.py", check=True)
    run = f"cd {where} && {L.SRC_IN_ROOT}/install.sh "
    p = root.sh(run + " ".join(shlex.quote(a) for a in INSTALL))
    check = root.sh(run + "--check")
    again = root.sh(run + "--uninstall")

    assert sorted(m.name for m in root.p(MARKERS).iterdir()) == []
    assert p.returncode == 0, p.stdout + p.stderr
    assert "[PASS]    venv:" in check.stdout and "[PASS]    config:" in check.stdout, check.stdout
    assert again.returncode == 0, again.stdout + again.stderr


# --------------------------------------------- item 5: passwords never shown
SECRETS = ("Sekret-1", "sekret-2", "SEKRET-3", "se;kret}}4", "sekret-5")


def test_check_and_install_never_show_a_password(throwaway_root):
    root = throwaway_root
    conn = (f"Password={SECRETS[0]};DSN=qmt_elsewhere;UID=agi;pwd={SECRETS[1]};PASSWORD = {SECRETS[2]};"
            f"Pwd={{{SECRETS[3]}}};TLSKEYPWD={SECRETS[4]}")
    root.write(CONF, f"[database]\nconnection = {conn}\n", mode=0o640, owner="root:asterisk")
    p = installed(root)
    shown = [line for line in p.stdout.splitlines() if "config points elsewhere" in line]
    assert shown and "Password=***" in shown[0], p.stdout

    p = root.install("--check")
    assert p.returncode == 1
    shown = [line for line in p.stdout.splitlines() if line.startswith("[FAIL]    database:")]
    assert shown, p.stdout
    assert "DSN=qmt_elsewhere;UID=agi;" in shown[0] and "pwd=***" in shown[0], shown[0]
    out = p.stdout + p.stderr
    for secret in SECRETS + ("kret}}4", "kret}4"):
        assert secret not in out


# ------------------------------------ item 9: every agi-bin used is removed
def test_uninstall_removes_the_script_from_every_agi_dir_used(throwaway_root):
    root = throwaway_root
    dirs = ("/opt/agi-one", "/srv/agi-two")
    for d in dirs:
        installed(root, "--agi-dir", d)
    for d in dirs:
        assert root.p(f"{d}/{SCRIPT}").exists()
    recorded = [line for line in root.p(MANIFEST).read_text().splitlines() if line.startswith("agi_dir=")]
    assert recorded == [f"agi_dir={d}" for d in dirs]       # the one in use last
    p = installed(root, "--agi-dir", dirs[1])
    assert "[changed]" not in p.stdout                      # the manifest is stable

    p = root.install("--uninstall")

    assert p.returncode == 0, p.stdout + p.stderr
    for d in dirs:
        assert f"[changed] script: removed {d}/{SCRIPT}" in p.stdout
        assert not root.p(f"{d}/{SCRIPT}").exists()
