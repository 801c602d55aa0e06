"""install.sh against a hostile asterisk user and a hostile working folder
(issue 7, items 2, 3, 5 and 9; issue 14: folder links, FIFOs, SQLite as
root, PASSWD, what --uninstall leaves), inside the Debian sid chroot."""

import shlex

import pytest

import harness as L

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
    """Bytes (of a regular file: a FIFO is never opened), mode, owner and link
    count of path (not following a link), or None."""
    p = root.sh(f"test -e {path} || test -L {path} || exit 3; "
                f"if test -f {path}; then sha256sum < {path}; fi; stat -c '%F %a %U:%G %h' {path}")
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


# --------------------------------- issue 14: links, FIFOs, SQLite, leftovers
MANAGER = "/etc/asterisk/manager.conf"
MANAGER_D = "/etc/asterisk/manager.d"
ASTERISK_CONF = "/etc/asterisk/asterisk.conf"
FREEPBX_AGI = "/var/lib/asterisk/agi-bin"


def listing(root, folder):
    """Every name, type, mode, owner and size below folder (not following links)."""
    return root.sh(f"find {folder} -printf '%P %y %m %u:%g %s\\n' | sort", check=True).stdout


def watched(root):
    """What a refused run must leave exactly as it was."""
    return {path: fingerprint(root, path)
            for path in (ODBC_INI, EXTENSIONS, CUSTOM, MANAGER, CONF, DB, ASTERISK_CONF, MANIFEST)}


def agi_bin_under_var_lib(root):
    """asterisk.conf as FreePBX has it: astagidir in asterisk's own /var/lib/asterisk."""
    text = root.p(ASTERISK_CONF).read_text().replace("[directories](!)", "[directories]")
    root.p(ASTERISK_CONF).write_text(text.replace("/usr/share/asterisk/agi-bin", FREEPBX_AGI))


def _manager_d_to_apt(root):
    root.sh(f"rm -r {MANAGER_D}", check=True)      # none yet (asterisk could rename it; overlayfs cannot)
    root.sh(f"ln -s /etc/apt/apt.conf.d {MANAGER_D}", user="asterisk", check=True)
    return MANAGER_D, "/etc/apt/apt.conf.d"


def _agi_bin_to_cron_d(root, by="asterisk"):
    agi_bin_under_var_lib(root)
    root.sh("mkdir -p -m 755 /etc/cron.d", check=True)
    root.sh(f"rm -rf {FREEPBX_AGI} && ln -s /etc/cron.d {FREEPBX_AGI}", user=by, check=True)
    return FREEPBX_AGI, "/etc/cron.d"


# case: plant(root) -> (the folder link, the root folder it leads to)
FOLDER_LINKS = {
    "manager.d-to-apt.conf.d": _manager_d_to_apt,
    "agi-bin-to-cron.d": _agi_bin_to_cron_d,
    # root's own link, but in asterisk's folder: asterisk could have swapped it
    "agi-bin-to-cron.d-made-by-root-in-asterisks-folder": lambda root: _agi_bin_to_cron_d(root, by="root"),
}


@pytest.mark.parametrize("case", sorted(FOLDER_LINKS))
def test_a_folder_link_another_user_could_plant_is_refused_before_any_change(throwaway_root, case):
    root = throwaway_root
    link, target = FOLDER_LINKS[case](root)
    before_target, before = listing(root, target), watched(root)

    p = root.install(*INSTALL)

    assert p.returncode == 1, p.stdout + p.stderr
    errors = error_lines(p)
    assert len(errors) == 1, p.stderr
    assert errors[0].startswith("[ERROR]") and f"the folder {link} is a symbolic link to {target}" in errors[0], \
        errors[0]
    assert listing(root, target) == before_target            # nothing written there
    assert watched(root) == before
    assert "[changed]" not in p.stdout, p.stdout
    assert not root.p(PREFIX).exists()


# Debian's own links, made by root in root's folders: /var/run -> /run
# (absolute), merged /usr's /lib -> usr/lib (relative).
@pytest.mark.parametrize("given, real", [("/var/run/qmt-agi", "/run/qmt-agi"),
                                         ("/lib/qmt-agi", "/usr/lib/qmt-agi")])
def test_a_link_only_root_could_make_is_followed(throwaway_root, given, real):
    root = throwaway_root
    assert root.sh(f"stat -c '%U %a' {given.rsplit('/', 1)[0]} && test -L {given.rsplit('/', 1)[0]}",
                   check=True).stdout.startswith("root ")

    p = installed(root, "--agi-dir", given)

    assert f"[changed] agi-bin: created {given} (from --agi-dir)" in p.stdout, p.stdout
    assert root.sh(f"stat -c '%a %U:%G' {real}/{SCRIPT}", check=True).stdout == "750 root:asterisk\n"
    p = root.install("--uninstall")
    assert p.returncode == 0 and f"[changed] script: removed {given}/{SCRIPT}" in p.stdout, p.stdout + p.stderr
    assert not root.p(f"{real}/{SCRIPT}").exists()


def _fifo(root, path):
    root.sh(f"rm -f {path} && mkfifo -m 600 {path}", user="asterisk", check=True)
    return "it is not a regular file"


def _folder(root, path):
    root.sh(f"rm -f {path} && mkdir {path}", user="asterisk", check=True)
    return "it is not a regular file"


# (how install.sh runs, the file root reads, what asterisk puts there)
NOT_A_FILE = [
    ("install", MANAGER, _fifo), ("check", MANAGER, _fifo), ("uninstall", MANAGER, _fifo),
    ("install", ASTERISK_CONF, _fifo), ("install", CONF, _folder), ("check", CONF, _fifo),
    ("uninstall", EXTENSIONS, _fifo), ("check", EXTENSIONS, _fifo),
]
MODE_ARGS = {"install": INSTALL, "check": ("--check",), "uninstall": ("--uninstall",)}
PROMPTLY = 60          # seconds; a blocked read would wait forever


@pytest.mark.parametrize("mode, path, plant", NOT_A_FILE,
                         ids=[f"{m}-{p.rsplit('/', 1)[1]}-{f.__name__[1:]}" for m, p, f in NOT_A_FILE])
def test_a_fifo_or_folder_where_root_reads_a_file_is_refused_promptly(throwaway_root, mode, path, plant):
    root = throwaway_root
    if mode != "install":
        installed(root)
    if path == CONF and mode == "install":
        root.sh(f"rm -f {CONF}", check=True)
    why = plant(root, path)
    before = {f: fingerprint(root, f) for f in (ODBC_INI, EXTENSIONS, MANAGER, CONF, MANIFEST)}
    args = " ".join(shlex.quote(a) for a in MODE_ARGS[mode])

    # timeout kills install.sh's whole process group: a hang fails the test, nothing is left blocked
    p = root.sh(f"cd {L.SRC_IN_ROOT} && timeout -s KILL {PROMPTLY} ./install.sh {args}", timeout=PROMPTLY + 30)

    assert p.returncode == 1, f"exit {p.returncode} (137: still blocked after {PROMPTLY} s)\n" + p.stdout + p.stderr
    errors = error_lines(p)
    assert len(errors) == 1 and errors[0].startswith("[ERROR]"), p.stderr
    assert f"refusing to touch {path}: {why}" in errors[0], errors[0]
    assert "[changed]" not in p.stdout and "[PASS]" not in p.stdout, p.stdout
    assert {f: fingerprint(root, f) for f in before} == before


PYTHON_LOG = "/tmp/qmt-python-runs"
PYTHON_SPY = f"""#!/bin/sh
# e2e: log who runs Python and whether its code uses SQLite, then the real python3
code=$*
if [ "$1 $2" = "-I -" ]; then code=$(cat); printf '%s\\n' "$code" > /tmp/qmt-spy.$$; exec < /tmp/qmt-spy.$$; fi
case $code in *sqlite3*) what=sqlite ;; *) what=other ;; esac
echo "$(id -u) $what" >> {PYTHON_LOG}
exec /usr/bin/python3 "$@"
"""


def test_root_never_opens_the_allowlist_with_sqlite(throwaway_root):
    """The allowlist file is the asterisk user's to write: root only copies
    its bytes; creating and upgrading its table runs as asterisk."""
    root = throwaway_root
    root.write("/usr/local/bin/python3", PYTHON_SPY, mode=0o755)
    root.write(PYTHON_LOG, "", mode=0o666)
    installed(root)                                           # creates the table
    root.sh(f"sqlite3 {DB} 'ALTER TABLE queue_mobile_agents DROP COLUMN confirm_answer'", check=True)

    p = installed(root)                                       # upgrades it

    assert "[changed] allowlist: added column(s) confirm_answer" in p.stdout, p.stdout
    columns = root.sh(f"sqlite3 {DB} 'PRAGMA table_info(queue_mobile_agents)'", check=True).stdout
    assert "|confirm_answer|" in columns
    runs = root.p(PYTHON_LOG).read_text().split("\n")
    asterisk_uid = root.sh("id -u asterisk", check=True).stdout.strip()
    assert "0 other" in runs                                  # the spy sees root's Python
    assert "0 sqlite" not in runs, runs
    assert f"{asterisk_uid} sqlite" in runs, runs


# ---------------------------------------------- --uninstall: the ring path
RING_MEMBERS = {"8008": ["Local/79001112233@qmt-ring/n", "Local/79004445566@qmt-ring/n"],
                "8012": ["Local/79001112233@qmt-ring/n"]}
OTHER_MEMBER = ("8010", "Local/79007778899@outbound-allroutes/n")     # not ours: stays
EID_NOISE = "No ethernet interface found for seeding global EID. You will need to set it manually."


def _noisy_asterisk_cli(root):
    """asterisk -rx as on a box without an IPv4 ethernet card: a line before the answer."""
    root.write("/usr/local/sbin/asterisk", f"#!/bin/sh\necho '{EID_NOISE}'\nexec /usr/sbin/asterisk \"$@\"\n",
               mode=0o755)


def test_uninstall_removes_ring_path_members_and_astdb_families(throwaway_root):
    root = throwaway_root
    ast = L.Asterisk(root)
    ast.start()
    try:
        installed(root)
        for queue, members in RING_MEMBERS.items():
            for iface in members:
                ast.cli(f"queue add member {iface} to {queue}")
        ast.cli(f"queue add member {OTHER_MEMBER[1]} to {OTHER_MEMBER[0]}")
        ast.cli("database put qmt-ring/79001112233 missed 2")
        ast.cli("database put qmt-ring/79004445566 ring_seconds 20")
        ast.cli("database put qmt-pin 79001112233 1,2,3")
        ast.cli("database put qmt-other keep 1")
        _noisy_asterisk_cli(root)

        p = root.install("--uninstall")

        assert p.returncode == 0, p.stdout + p.stderr
        for queue, members in RING_MEMBERS.items():
            assert ast.member_list(queue) == []
            for iface in members:
                assert f"[changed] asterisk: removed the ring path's member {iface} from queue {queue}" \
                       in p.stdout, p.stdout
        assert ast.member_list(OTHER_MEMBER[0]) == [OTHER_MEMBER[1]]
        assert "[changed] asterisk: removed astdb family qmt-ring (2 keys)" in p.stdout, p.stdout
        assert "[changed] asterisk: removed astdb family qmt-pin (1 keys)" in p.stdout, p.stdout
        assert "[changed] asterisk: dialplan reloaded" in p.stdout      # it saw Asterisk running
        tree = ast.cli("database show")
        assert "/qmt-ring/" not in tree and "/qmt-pin/" not in tree and "/qmt-other/keep" in tree, tree
        assert "@qmt-ring/n" not in ast.cli("database show Queue/PersistentMembers")

        again = root.install("--uninstall")
        assert again.returncode == 0 and "[changed]" not in again.stdout, again.stdout
    finally:
        ast.stop()


def test_uninstall_without_asterisk_names_the_ring_leftovers(throwaway_root):
    root = throwaway_root
    installed(root)

    p = root.install("--uninstall")

    assert p.returncode == 0, p.stdout + p.stderr
    notes = [line for line in p.stdout.splitlines() if line.startswith("[note]") and "qmt-ring" in line]
    assert len(notes) == 1, p.stdout
    for needed in ("Local/<number>@qmt-ring/n", "queue remove member", "database deltree qmt-ring",
                   "database deltree qmt-pin"):
        assert needed in notes[0], notes[0]


# ------------------------------------------------- passwords, PASSWD too
def test_install_never_shows_a_passwd_value(throwaway_root):
    root = throwaway_root
    secrets = ("Sekret-6", "sekret-7", "se;kret}}8", "sekret9")
    conn = (f"PASSWD={secrets[0]};DSN=qmt_elsewhere;UID=agi;passwd = {secrets[1]};DbPasswd={{{secrets[2]}}};"
            f"Passwd={{{secrets[3]}")
    root.write(CONF, f"[database]\nconnection = {conn}\n", mode=0o640, owner="root:asterisk")

    p = installed(root)
    again = installed(root, "--dsn", "qmt_wanted")

    shown = [line for line in p.stdout.splitlines() if "config points elsewhere" in line]
    # the package's masker (qmt.rules) keeps the blank after "=": "passwd = ***"
    assert shown and "(PASSWD=***;DSN=qmt_elsewhere;UID=agi;passwd = ***;DbPasswd=***;Passwd=***)" in shown[0], \
        p.stdout
    noted = [line for line in again.stdout.splitlines() if "[note]    config:" in line]
    assert noted and "PASSWD=***;" in noted[0], again.stdout
    out = p.stdout + p.stderr + again.stdout + again.stderr
    for secret in secrets + ("kret}}8", "kret}8", "kret9"):
        assert secret not in out
