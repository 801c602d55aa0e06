"""A stateful fake Asterisk that runs an AGI script over real pipes.

It speaks classic AGI the way res_agi.c does, so the real pyst2 parsing runs:
the start block of `agi_*: value` lines and a blank line; `200 result=...`
replies; `510` for an unknown command; `511` for a command not permitted on
a dead channel; a multi-line `520-...` / `520 End of proper usage.` for bad
syntax; SIGHUP when the caller hangs up; EOF when Asterisk closes the pipe.
With `fastagi` set (a FastAgiServers), the same call goes to a `qmt serve`
over TCP as res_agi's FastAGI client sends it: `agi_network: yes`, the
script name, the start block; a hangup is the line HANGUP (written with the
reply it follows), closing is a shutdown of the fake's sending side.
It knows the dialplan functions the toggle reads (QUEUE_EXISTS,
QUEUE_MEMBER_LIST, QUEUE_MEMBER(q,paused,iface), LOCK, and
DIALPLAN_EXISTS(context,number,1) from a dict of routes and their patterns)
from a dict of queues and a set of paused members, and records every
variable set. The reason of a pause is told by tests/fake_ami.py, as by
Asterisk's AMI. write_cli() puts a fake `asterisk` command on disk that
answers `asterisk -rx` as the real one does for `dialplan show
<number>@<context>` and `database show <family>`, from the same state.
"""

import hashlib
import json
import os
import re
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "agi", "queue_mobile_toggle.py")

# Commands res_agi still runs on a hung-up channel; the rest get 511.
DEAD_CHANNEL_COMMANDS = {"GET VARIABLE", "GET FULL VARIABLE", "SET VARIABLE", "VERBOSE",
                         "NOOP", "EXEC", "DATABASE GET", "DATABASE PUT", "DATABASE DEL"}
# (command, number of arguments after it) for the commands this fake knows.
KNOWN_COMMANDS = {"GET VARIABLE": 1, "GET FULL VARIABLE": (1, 2), "SET VARIABLE": 2,
                  "VERBOSE": (1, 2), "ANSWER": 0, "NOOP": (0, 1), "HANGUP": (0, 1),
                  "GET DATA": (1, 3), "STREAM FILE": (2, 3),
                  "DATABASE GET": 2, "DATABASE PUT": 3, "DATABASE DEL": 2, "EXEC": (1, 2)}


def parse_agi_args(line):
    """Split a command line as res_agi's parse_args() does: whitespace
    separates, double quotes group, a backslash escapes the next character."""
    args, current, quoted, escaped, started = [], [], False, False, False
    for char in line:
        if escaped:
            current.append(char)
            escaped, started = False, True
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted, started = not quoted, True
        elif char in " \t" and not quoted:
            if started:
                args.append("".join(current))
                current, started = [], False
        else:
            current.append(char)
            started = True
    if started:
        args.append("".join(current))
    return args


def reap(process, deadline):
    """The child's exit code, or None after killing it when `deadline`
    (time.monotonic()) passes first."""
    try:
        return process.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def extension_matches(pattern, exten):
    """Asterisk's extension match for the forms a route uses: a plain
    extension is itself; after '_', X is 0-9, Z 1-9, N 2-9, [...] a set or
    range, '.' one or more characters, '!' zero or more."""
    if not pattern.startswith("_"):
        return pattern == exten
    regex, at = "", 1
    while at < len(pattern):
        char = pattern[at]
        if char == "[":
            end = pattern.index("]", at)
            regex, at = regex + "[%s]" % pattern[at + 1:end], end + 1
            continue
        regex += {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}.get(char.upper(), re.escape(char))
        at += 1
    return re.fullmatch(regex, exten) is not None


FASTAGI_SCRIPT = "queue_mobile_toggle"
HANGUP_LINE = "HANGUP\n"          # res_agi's hangup on a FastAGI socket (run_agi, agi->fast)


def free_port():
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


class QmtServe:
    """One `qmt serve` process on a free port, with the environment (config,
    ODBC files) of the calls it answers; its stderr in a file."""

    def __init__(self, env, port=None, from_config=False, descriptors=None):
        """Started and answering, or refused: `refusal` then holds its output.
        On `port` (default: a free one), given as --port unless `from_config`
        (the config's [fastagi] port must then be the same); `descriptors`:
        its hard limit of open files."""
        self.port, self.refusal = port or free_port(), None
        self.stderr = tempfile.TemporaryFile()
        process_env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "agi"), **env)
        option = [] if from_config else ["--port", str(self.port)]
        self.process = subprocess.Popen([sys.executable, "-m", "qmt", "serve", *option],
                                        stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr,
                                        env=process_env, cwd="/", preexec_fn=descriptors and (
                                            lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                                                       (descriptors, descriptors))))
        self._wait_until_it_answers()

    def _wait_until_it_answers(self, seconds=15):
        from qmt.fastagi import probe
        deadline = time.monotonic() + seconds
        while probe(self.port, 1.0) is None:
            if self.process.poll() is not None:
                self.refusal = self.errors()
                return
            if time.monotonic() > deadline:
                raise RuntimeError("qmt serve did not start: %s" % self.errors())
            time.sleep(0.02)

    def errors(self, start=0):
        """What the server wrote on stderr and stdout, from byte `start`."""
        self.stderr.seek(start)
        return self.stderr.read().decode("utf-8", "replace")

    def written(self):
        self.stderr.seek(0, os.SEEK_END)
        return self.stderr.tell()

    def stop(self):
        """SIGTERM, as systemd stops it; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return reap(self.process, time.monotonic() + 30)   # its stderr file stays readable


def environment_key(env):
    """What a server reads once at start: its environment, the config file
    and the ODBC files it names (a test that changes one needs a new server,
    as an admin restarts the service)."""
    digest = hashlib.sha256(json.dumps(sorted(env.items())).encode())
    for name in ("QMT_CONFIG", "ODBCINI"):
        try:
            with open(env.get(name, ""), "rb") as handle:
                digest.update(handle.read())
        except OSError:
            digest.update(b"-")
    return digest.hexdigest()


class FastAgiServers:
    """The `qmt serve` of each environment a test calls with, started at
    its first call and again after its config changed; stop_all() at the end."""

    def __init__(self):
        self.servers = {}      # env's names -> (environment_key, QmtServe)

    def server_for(self, env):
        """The server answering calls with `env`, or None when it refused to
        start (a bad config): the dialplan then runs the classic script."""
        names = tuple(sorted(env.items()))
        key = environment_key(env)
        known = self.servers.get(names)
        if known is not None and known[0] == key:
            return None if known[1].refusal is not None else known[1]
        if known is not None:
            known[1].stop()
        server = QmtServe(env)
        self.servers[names] = (key, server)
        return None if server.refusal is not None else server

    def stop_all(self):
        """The exit codes of the servers that started (SIGTERM: 0 each)."""
        codes = [server.stop() for _key, server in self.servers.values() if server.refusal is None]
        self.servers.clear()
        return codes


class _SocketWriter:
    """The fake's sending side of a FastAGI connection, as run() writes a pipe."""

    def __init__(self, connection):
        self.connection, self.closed = connection, False

    def write(self, data):
        self.connection.sendall(data)

    def flush(self):
        pass

    def close(self):
        """Asterisk closing: the server reads EOF (the fake still reads what it sends)."""
        if not self.closed:
            self.closed = True
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass


class _SocketReader:
    def __init__(self, connection):
        self.connection = connection

    def fileno(self):
        return self.connection.fileno()

    def close(self):
        self.connection.close()


class FastAgiCall:
    """What run() uses of a Popen, for one FastAGI connection to `server`:
    the exit code is 0 once the server closed the connection, and the
    server's stderr during the call is the run's."""

    def __init__(self, server):
        self.server, self.returncode = server, None
        self.stderr_start = server.written()
        connection = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        connection.settimeout(None)
        self.stdin, self.stdout = _SocketWriter(connection), _SocketReader(connection)

    def start_block(self, block):
        """res_agi's launch_netscript lines, then setup_env's block."""
        header = "agi_network: yes\nagi_network_script: %s\n" % FASTAGI_SCRIPT
        return header.encode() + block if isinstance(block, bytes) else header + block

    def wait(self, timeout=None):
        self.returncode = 0 if self.returncode is None else self.returncode
        return self.returncode

    def send_signal(self, signum):
        raise AssertionError("FastAGI has no signals: run() writes HANGUP with the reply")

    def kill(self):
        self.returncode = -signal.SIGKILL
        self.stdout.close()

    def stderr_text(self):
        return self.server.errors(self.stderr_start)


class AgiRun:
    """What one run of the script did."""

    def __init__(self):
        self.variables = {}      # every SET VARIABLE, last value wins
        self.set_order = []      # names in the order they were set
        self.verbose = []        # VERBOSE messages
        self.commands = []       # raw command lines received
        self.exit_code = None
        self.stderr = ""
        self.elapsed = 0.0
        self.killed_by_peer = False
        self.prompts = []        # files played by GET DATA / STREAM FILE, in order
        self.fell_back = False   # FastAGI mode: no server would start, the classic script ran

    def get(self, name, default=None):
        return self.variables.get(name, default)

    @property
    def state(self):
        return self.variables.get("QUEUESTAT")

    @property
    def queues(self):
        count = int(self.variables.get("QMT_COUNT", "0") or 0)
        return [self.variables["QMT_QUEUE_%d" % i] for i in range(1, count + 1)]


FAKE_CLI = """#!%(python)s
import json, sys
sys.path.insert(0, %(tests)r)
from fake_asterisk import FakeAsterisk
state = json.loads(%(state)r)
if not state["running"] or sys.argv[1:2] != ["-rx"] or len(sys.argv) != 3:
    print("Unable to connect to remote asterisk (does /var/run/asterisk/asterisk.ctl exist?)")
    sys.exit(1)
fake = FakeAsterisk()
fake.routes = state["routes"]
fake.astdb = {tuple(key): value for key, value in state["astdb"]}
sys.stdout.write(fake.cli(sys.argv[2]))
"""


# res_agi reads GET VARIABLE functions into 1024 bytes, GET FULL VARIABLE
# into VAR_BUF_SIZE (4096): longer values come back cut short.
GET_VARIABLE_BUFFER, GET_FULL_VARIABLE_BUFFER = 1024, 4096


def member_list_text(members, size=GET_FULL_VARIABLE_BUFFER):
    """QUEUE_MEMBER_LIST() as app_queue writes it into a buffer of `size`
    bytes: each interface strncat'ed after a comma, the loop stopping once
    the text would reach size - 2 ("Truncating list"), the text itself
    ending at size - 1 bytes (the last entry maybe cut in the middle)."""
    text = b""
    for count, member in enumerate(members):
        text += (b"," if count else b"") + member.encode("utf-8")
        if len(text) >= size - 2:
            break
    return text[:size - 1].decode("utf-8", "replace")


class FakeAsterisk:
    """One channel's view of Asterisk: queues and their members."""

    def __init__(self, queues=None, persistent_members=True, fastagi=None):
        # A FastAgiServers: run() then calls a `qmt serve` instead of the script.
        self.fastagi = fastagi
        # queue name -> list of member interfaces (as Asterisk spells them)
        self.queues = {name: list(members) for name, members in (queues or {}).items()}
        # persistentmembers=yes: queues with members are keys in astdb.
        self.persistent_members = persistent_members
        self.paused = set()     # (queue, interface) of paused members
        self.pause_reasons = {}  # (queue, interface) -> PausedReason, told by the fake AMI only
        self.last_pauses = {}    # (queue, interface) -> LastPause (epoch seconds), told by the fake AMI only
        # LOCK(name) of func_lock: names another call holds (LOCK then gives
        # 0 after its wait); every name this channel took, in order.
        self.locks_elsewhere = set()
        self.locks_taken = []
        self.channel_vars = {}
        self.astdb = {}          # (family, key) -> value, kept across runs like Asterisk's
        # What the caller keys in at each GET DATA, in turn: digits (ended
        # by # or the maximum), "" for silence (the timeout), None to hang up.
        self.keyed = []
        # The dialplan's contexts a number is dialled through: {context:
        # [pattern or extension, ...]}; a context not in it does not exist.
        # None: every context dials every number (the tests that are not
        # about routes). route_questions: each DIALPLAN_EXISTS asked.
        self.routes = None
        self.route_questions = []

    # -- dialplan functions and variables --------------------------------
    def read_variable(self, name, result=None):
        """Value or None (unset), as GET VARIABLE would see it. SET() sets
        the variable and returns its value (func_logic.c), recorded in
        `result` like any variable set."""
        if name.endswith(")") and "(" in name:
            func, arg = name[:-1].split("(", 1)
            if func == "SET" and "=" in arg:
                variable, _, value = arg.partition("=")
                self._set(result or AgiRun(), variable.strip(), value.strip())
                return value.strip()
            if func == "QUEUE_EXISTS":
                return "1" if arg in self.queues else "0"
            if func == "QUEUE_MEMBER_LIST":
                # A missing queue reads as empty (Asterisk also logs a warning).
                return member_list_text(self.queues.get(arg, []))
            if func == "QUEUE_MEMBER" and arg.count(",") == 2:
                queue, option, interface = arg.split(",")
                if option != "paused" or interface not in self.queues.get(queue, []):
                    return None
                return "1" if (queue, interface) in self.paused else "0"
            if func == "LOCK":
                if arg in self.locks_elsewhere:
                    return "0"
                self.locks_taken.append(arg)
                return "1"
            if func == "DIALPLAN_EXISTS":
                # func_dialplan: 1 when context,exten,priority exists, else 0
                # (a missing context too). Every route here has priority 1 only.
                context, _, rest = arg.partition(",")
                exten, _, priority = rest.partition(",")
                self.route_questions.append((context, exten, priority))
                return "1" if priority in ("", "1") and self.dialable(context, exten) else "0"
            if func == "DB_KEYS" and arg == "Queue/PersistentMembers":
                return ",".join(q for q, members in self.queues.items()
                                if members and self.persistent_members)
            return None
        return self.channel_vars.get(name)

    def dialable(self, context, exten):
        if self.routes is None:
            return True
        return any(extension_matches(pattern, exten) for pattern in self.routes.get(context, ()))

    # -- the CLI socket: `asterisk -rx` ------------------------------------
    def cli(self, command):
        """What `asterisk -rx COMMAND` prints (pbx.c's dialplan show, main/db.c's database show)."""
        words = command.split()
        if words[:2] == ["dialplan", "show"] and len(words) == 3 and "@" not in words[2]:
            if self.routes is not None and words[2] not in self.routes:
                return "There is no existence of '%s' context\n" % words[2]
            return "[ Context '%s' created by 'pbx_config' ]\n\n-= 0 extensions (0 priorities) in 1 context. =-\n" \
                % words[2]
        if words[:2] == ["dialplan", "show"] and len(words) == 3:
            exten, context = words[2].split("@", 1)
            if self.routes is not None and context not in self.routes:
                return "There is no existence of '%s' context\n" % context
            found = ["_X!"] if self.routes is None else \
                [pattern for pattern in self.routes[context] if extension_matches(pattern, exten)]
            if not found:
                return "There is no existence of %s@%s extension\n" % (exten, context)
            return "[ Context '%s' created by 'pbx_config' ]\n%s\n-= %d %s (%d %s) in 1 context. =-\n" % (
                context, "".join("  '%s' =>          1. NoOp()                                [extensions.conf:1]\n"
                                 % pattern for pattern in found),
                len(found), "extension" if len(found) == 1 else "extensions",
                len(found), "priority" if len(found) == 1 else "priorities")
        if words[:2] == ["database", "show"] and len(words) == 3:
            prefix = "/%s/" % words[2]
            shown = sorted(("/%s/%s" % key, value) for key, value in self.astdb.items()
                           if ("/%s/%s" % key).startswith(prefix))
            return "".join("%-50s: %-25s\n" % pair for pair in shown) + "%d results found.\n" % len(shown)
        return "No such command '%s' (type 'core show help %s' for other possible commands)\n" % (command, words[0])

    def write_cli(self, folder, running=True):
        """An executable `asterisk` in `folder` that answers `-rx` from this
        fake's routes and astdb as they are now; with running=False it says
        what asterisk -rx says when no Asterisk runs."""
        state = json.dumps({"routes": self.routes, "astdb": [[list(key), value] for key, value in self.astdb.items()],
                            "running": running})
        path = os.path.join(str(folder), "asterisk")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(FAKE_CLI % dict(python=sys.executable, tests=os.path.dirname(os.path.abspath(__file__)),
                                         state=state))
        os.chmod(path, 0o755)
        return path

    # -- running a script -------------------------------------------------
    def run(self, callerid, arg=None, env=None, script=SCRIPT, hangup_after=None,
            eof_after=None, reply_override=None, timeout=20, python=None, raw_start=None,
            close_after_start=False, wrapper=(), fields=None, eof_after_reply=None, action=None):
        """Run the AGI script once for a call from `callerid`.

        hangup_after=N: the caller hangs up after the script's N-th command
        (SIGHUP, channel dead). eof_after=N: Asterisk closes the pipe instead
        of answering the N-th command; close_after_start=True closes it right
        after the start block. reply_override(cmd, args) may return a reply
        text (e.g. '510 ...') to send instead of the normal one, or "" to
        send nothing at all (a stalled Asterisk); eof_after_reply=N closes
        the pipe right after the reply to the N-th command (a reply cut
        off). `wrapper` is a command prefix (the benchmark's /usr/bin/time).
        `raw_start` (text or bytes) replaces the start block. `action`: the
        dialplan's third argument (break: the break destination).
        """
        result = AgiRun()
        stderr_file = tempfile.TemporaryFile()
        process_env = dict(os.environ)
        process_env.update(env or {})
        fast = self.fastagi is not None and script == SCRIPT and python is None and not wrapper
        if fast:
            server = self.fastagi.server_for(env or {})        # before the clock: its start is not the call's
            result.fell_back = server is None
            fast = server is not None
        started = time.monotonic()
        if fast:
            process = FastAgiCall(server)
            fields = dict({"agi_request": "agi://127.0.0.1:%d/%s" % (server.port, FASTAGI_SCRIPT)}, **(fields or {}))
        else:
            process = subprocess.Popen(
                list(wrapper) + [python or sys.executable, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=stderr_file, env=process_env, cwd="/")
        dead = False
        try:
            block = raw_start if raw_start is not None else self.start_block(callerid, arg, fields, action)
            self._send(process, process.start_block(block) if fast else block)
            if close_after_start:
                process.stdin.close()
            selector = selectors.DefaultSelector()
            selector.register(process.stdout, selectors.EVENT_READ)
            buffered = b""
            while True:
                remaining = timeout - (time.monotonic() - started)
                if remaining <= 0:
                    process.kill()
                    result.killed_by_peer = True
                    break
                if not selector.select(remaining):
                    continue
                try:
                    chunk = os.read(process.stdout.fileno(), 65536)
                except ConnectionResetError:
                    chunk = b""       # the server closed with our bytes unread: closed all the same
                if not chunk:
                    break  # the script closed stdout: it is exiting
                buffered += chunk
                while b"\n" in buffered:
                    raw, buffered = buffered.split(b"\n", 1)
                    line = raw.decode("utf-8", "replace").strip()
                    result.commands.append(line)
                    count = len(result.commands)
                    if eof_after is not None and count >= eof_after:
                        process.stdin.close()
                        eof_after = None
                        continue
                    reply = self._reply(line, result, dead, reply_override)
                    hang_up = hangup_after is not None and count >= hangup_after and not dead
                    if not process.stdin.closed:
                        # FastAGI: the HANGUP line right behind the reply, as res_agi
                        # writes it on its next turn, before it reads another command.
                        self._send(process, reply + HANGUP_LINE if hang_up and fast else reply)
                    if eof_after_reply is not None and count >= eof_after_reply:
                        process.stdin.close()
                    if hang_up:
                        dead = True
                        if not fast:
                            process.send_signal(signal.SIGHUP)
            result.exit_code = reap(process, started + timeout)
            if result.exit_code is None:
                result.killed_by_peer = True
                result.exit_code = process.returncode
        finally:
            result.elapsed = time.monotonic() - started
            for stream in (process.stdin, process.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            stderr_file.seek(0)
            result.stderr = process.stderr_text() if fast else stderr_file.read().decode("utf-8", "replace")
            stderr_file.close()
        return result

    @staticmethod
    def start_block(callerid, arg=None, fields=None, action=None):
        """The environment block res_agi's setup_env() writes for the
        dialplan's AGI(queue_mobile_toggle.py,<arg>,${FILTER(0-9+,${CALLERID(num)})}).
        `fields` replaces values (raw: a newline in one adds lines, as in
        Asterisk); a value of None drops that line."""
        lines = [
            ("agi_request", "queue_mobile_toggle.py"),
            ("agi_channel", "PJSIP/trunk-00000001"),
            ("agi_language", "en"),
            ("agi_type", "PJSIP"),
            ("agi_uniqueid", "1764219000.42"),
            ("agi_version", "22.10.1"),
            ("agi_callerid", "unknown" if callerid is None else callerid),
            ("agi_calleridname", "unknown"),
            ("agi_callingpres", "0"),
            ("agi_callingani2", "0"),
            ("agi_callington", "0"),
            ("agi_callingtns", "0"),
            ("agi_dnid", "4580"),
            ("agi_rdnis", "unknown"),
            ("agi_context", "qmt-toggle"),
            ("agi_extension", "s"),
            ("agi_priority", "9"),
            ("agi_enhanced", "0.0"),
            ("agi_accountcode", ""),
            ("agi_threadid", "140000000000001"),
        ]
        lines += [("agi_arg_1", arg or ""),
                  ("agi_arg_2", "".join(c for c in callerid or "" if c in "0123456789+"))]
        if action is not None:
            lines.append(("agi_arg_3", action))
        values = dict(lines, **(fields or {}))
        return "".join("%s: %s\n" % (key, values[key]) for key, _ in lines if values[key] is not None) + "\n"

    @staticmethod
    def _send(process, text):
        try:
            process.stdin.write(text if isinstance(text, bytes) else text.encode("utf-8"))
            process.stdin.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError):
            pass

    def _reply(self, line, result, dead, reply_override):
        words = line.split()
        command = next((c for c in sorted(KNOWN_COMMANDS, key=len, reverse=True)
                        if line.upper().startswith(c + " ") or line.upper() == c), None)
        args = parse_agi_args(line[len(command):]) if command else []
        if reply_override is not None:
            override = reply_override(command or (words[0] if words else ""), args)
            if override is not None:
                return override if override.endswith("\n") or not override else override + "\n"
        if command is None:
            return "510 Invalid or unknown command\n"
        expected = KNOWN_COMMANDS[command]
        allowed = expected if isinstance(expected, tuple) else (expected,)
        if len(args) not in range(min(allowed), max(allowed) + 1):
            return ("520-Invalid command syntax.  Proper usage follows:\n"
                    " Usage: %s\n520 End of proper usage.\n" % command)
        if dead and command not in DEAD_CHANNEL_COMMANDS:
            return "511 Command Not Permitted on a dead channel or intercept routine\n"
        if command in ("GET VARIABLE", "GET FULL VARIABLE"):
            name, limit = args[0], GET_VARIABLE_BUFFER
            if command == "GET FULL VARIABLE":
                if not (name.startswith("${") and name.endswith("}")):
                    return "200 result=1 (%s)\n" % name  # plain text substitutes to itself
                name, limit = name[2:-1], GET_FULL_VARIABLE_BUFFER
            value = self.read_variable(name, result)
            if value is None:
                return "200 result=0\n" if limit == GET_VARIABLE_BUFFER else "200 result=1 ()\n"
            return "200 result=1 (%s)\n" % value[:limit - 1]
        if command == "SET VARIABLE":
            self._set(result, *args)
            return "200 result=1\n"
        if command == "EXEC":
            if args[0].lower() != "mset":
                return "200 result=-2\n"          # res_agi: no such application
            for pair in (args[1] if len(args) > 1 else "").split(","):   # MSet: name=value,...
                name, _, value = pair.partition("=")
                self._set(result, name.strip(), value)
            return "200 result=0\n"
        if command == "VERBOSE":
            result.verbose.append(args[0])
            return "200 result=1\n"
        if command in ("GET DATA", "STREAM FILE"):
            result.prompts.append(args[0])
            return self._keyed_reply(args) if command == "GET DATA" else "200 result=0 endpos=800\n"
        if command.startswith("DATABASE"):
            return self._database(command, args)
        return "200 result=0\n"

    def _set(self, result, name, value):
        self.channel_vars[name] = value
        result.variables[name] = value
        result.set_order.append(name)

    def _keyed_reply(self, args):
        """res_agi's GET DATA: the digits, '(timeout)' when the caller
        stopped short of the maximum without #, -1 on hangup."""
        keyed = self.keyed.pop(0) if self.keyed else ""
        if keyed is None:
            return "200 result=-1\n"
        most = int(args[2]) if len(args) > 2 else 255
        digits = keyed.split("#")[0][:most]
        ended = "#" in keyed or len(digits) >= most
        return "200 result=%s%s\n" % (digits, "" if ended else " (timeout)")

    def _database(self, command, args):
        key = (args[0], args[1])
        if command == "DATABASE GET":
            return "200 result=1 (%s)\n" % self.astdb[key] if key in self.astdb else "200 result=0\n"
        if command == "DATABASE PUT":
            self.astdb[key] = args[2]
            return "200 result=1\n"
        return "200 result=%d\n" % (self.astdb.pop(key, None) is not None)
