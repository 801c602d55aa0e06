"""install.sh against a hostile asterisk user and a hostile working folder
(issue 7, items 2, 3, 5 and 9), inside the Debian sid chroot."""

import shlex

import pytest

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


# ------------------------------------------- item 2: planted links and owners
def _root_only_sqlite(root):
    root.sh("sqlite3 /root/secret.sqlite 'CREATE TABLE queue_mobile_agents (number TEXT); "
            "CREATE TABLE secret (s TEXT)' && chmod 600 /root/secret.sqlite", check=True)
    return "/root/secret.sqlite"


def _link_as_asterisk(planted):
    """The asterisk user (a compromised web GUI, say) puts a link at planted."""
    return lambda root, target: root.sh(f"ln -s {target} {planted}", user="asterisk", check=True)


def _named(path):
    return lambda root: path


# case: (planted path, what it leads to, how it is planted, what the one line says)
PLANTED = {
    "sqlite-link-to-root-only-db": (DB, _root_only_sqlite, _link_as_asterisk(DB), "symbolic link"),
    "sqlite-link-to-etc-nologin": (DB, _named("/etc/nologin"), _link_as_asterisk(DB), "symbolic link"),
    "config-link-to-etc-passwd": (CONF, _named("/etc/passwd"), _link_as_asterisk(CONF), "symbolic link"),
    "custom-dialplan-link-to-etc-shadow": (CUSTOM, _named("/etc/shadow"), _link_as_asterisk(CUSTOM),
                                           "symbolic link"),
    # a kernel without fs.protected_hardlinks lets asterisk make this one
    "config-hard-link-to-etc-passwd": (
        CONF, _named("/etc/passwd"), lambda root, target: root.sh(f"ln {target} {CONF}", check=True),
        "hard link"),
    "custom-dialplan-owned-by-another-user": (
        CUSTOM, _named(CUSTOM),
        lambda root, target: root.sh(f"echo '; not ours' > {target} && chown nobody:nogroup {target}",
                                     check=True), "belongs to nobody"),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_planted_link_or_stranger_file_is_refused_and_target_untouched(throwaway_root, case):
    root = throwaway_root
    planted, make_target, plant, why = PLANTED[case]
    target = make_target(root)
    plant(root, target)
    before = fingerprint(root, target)

    p = root.install(*INSTALL)

    assert fingerprint(root, target) == before
    assert p.returncode == 1, p.stdout + p.stderr
    errors = error_lines(p)
    assert len(errors) == 1, p.stderr
    assert errors[0].startswith("[ERROR]") and planted in errors[0] and why in errors[0], errors[0]
    assert "[changed]" not in p.stdout, p.stdout          # refused before any change
    assert not root.p(PREFIX).exists()


def test_an_edited_file_is_replaced_whole_keeping_owner_and_mode(throwaway_root):
    """FreePBX's extensions_custom.conf belongs to asterisk: the #include line
    goes into a new file renamed over it, with the old owner and mode."""
    root = throwaway_root
    root.sh(f"printf '; custom\\n[from-internal-custom]' > {CUSTOM} && "
            f"chown asterisk:asterisk {CUSTOM} && chmod 664 {CUSTOM}", check=True)
    inode = root.p(CUSTOM).stat().st_ino

    installed(root)

    assert root.p(CUSTOM).read_text() == f"; custom\n[from-internal-custom]\n{INCLUDE}\n"
    assert root.sh(f"stat -c '%a %U:%G %h' {CUSTOM}", check=True).stdout == "664 asterisk:asterisk 1\n"
    assert root.p(CUSTOM).stat().st_ino != inode
    assert root.sh("ls -A /etc/asterisk | grep -F .qmt- || true", check=True).stdout == ""


def _without_ours(path, text):
    """The file as it was before install.sh added its DSN section / #include line."""
    if path == ODBC_INI:              # the chroot's odbc.ini was empty
        assert text.startswith("[queue_mobile_toggle]\n") and text.count("[") == 1, text
        return ""
    assert text.count(INCLUDE + "\n") == 1, text
    return text.replace(INCLUDE + "\n", "")


@pytest.mark.parametrize("path", [ODBC_INI, EXTENSIONS])
def test_failed_write_leaves_the_file_whole(throwaway_root, path):
    """A write that fails half-way (here: at the file-size limit) leaves the
    old file exactly as it was, and no temporary file behind."""
    root = throwaway_root
    installed(root)
    f = root.p(path)
    text = _without_ours(path, f.read_text())
    text += "".join(f"; padding line {i:06d} {'.' * 80}\n" for i in range(12000))
    f.write_text(text)
    before = fingerprint(root, path)

    # install.sh adds its section / line again: the new file would cross the limit
    p = root.sh(f"cd {L.SRC_IN_ROOT} && prlimit --fsize={len(text.encode()) + 20} ./install.sh "
                + " ".join(shlex.quote(a) for a in INSTALL))

    assert fingerprint(root, path) == before
    assert p.returncode == 1, p.stdout + p.stderr
    folder = path.rsplit("/", 1)[0]
    assert root.sh(f"ls -A {folder} | grep -F .qmt- || true", check=True).stdout == ""
    errors = error_lines(p)
    assert len(errors) == 1 and errors[0].startswith("[ERROR]") and path in errors[0], p.stderr


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
