"""One AGI call of queue-mobile-toggle: the wire contract with the dialplan.

Asterisk runs it as ``AGI(queue_mobile_toggle.py,<queue or empty>,<number>[,<action>])``
from the dialplan in extensions_queue_mobile_toggle.conf, where <number> is
``${FILTER(0-9+,${CALLERID(num)})}`` and <action> is empty (the toggle) or
``break`` (the break destination, app-queue-toggle-mob,pause,1). The script
decides; the dialplan acts.
Where the admin turned on the FastAGI server (`qmt serve`, qmt.fastagi),
the dialplan asks it first, as AGI(agi://127.0.0.1:<port>/queue_mobile_toggle,
<queue>,<number>[,<action>]): the same run() answers, with the same contract.
It only reads: the caller number, queue membership (from Asterisk), the
allowlist table (through ODBC) and, for a login or a resume, whether the
outbound route can dial the number (DIALPLAN_EXISTS(<route>,<number>,1)).

Asterisk writes the AGI start block without escaping newlines, so a caller
who puts "\nagi_callerid: ..." into his name, the dialled number or a
diversion header adds lines of his own. The block is therefore read
strictly: a repeated key, a line that is not "agi_key: value", or a control
character anywhere refuses the call (DENIED, bad_agi_env). The caller number
must be the same in agi_callerid (near the top, before any field a caller
controls) and in the last argument (written by the dialplan). Before it
answers, the script proves that Asterisk's replies are in step with its
commands (a random token echoed back), since a forged blank line would end
the block early and leave the rest to be read as replies; if not, it says
nothing (ERROR, agi_out_of_sync).

Its first command, the echo, also sets QMT_SERVED (the token): the
dialplan runs the classic script after a FastAGI attempt only when that
mark is empty, so a call is never decided twice.

It answers with channel variables, all in one `EXEC MSet` (QUEUESTAT last),
set from validated characters only:

    QUEUEUSER            normalised number, digits only ('' if refused)
    QUEUESTAT            LOGGEDIN | LOGGEDOUT | PAUSED | WORKING | DENIED |
                         ERROR (state before; PAUSED: a member paused where
                         he may still be, to be resumed there; WORKING, the
                         break action only: a member on duty, to be paused
                         with reason qmt-break)
    QAGENT_UNAUTHORIZED  1 when DENIED, else 0
    QMT_INTERFACE        the member interface of a login: Local/<number>@qmt-ring/n
    QMT_COUNT            how many queues to act on
    QMT_QUEUE_<i>, QMT_PENALTY_<i>, QMT_NAME_<i>   for i = 1..QMT_COUNT
    QMT_IFACE_<i>        the interface to remove or resume in queue i (a
                         member logged in before the ring path has an older one)
    QMT_RING_*           with LOGGEDOUT only: the ring path's settings, which
                         the dialplan keeps in astdb (qmt-ring/<number>/...)
    QMT_REASON           short token naming why (also in the log line;
                         DENIED outside_shift: a login outside the row's
                         shift window, which has its own prompt);
                         with ERROR, no_route: a login or resume the route
                         ([member] route) cannot dial, refused before any
                         PIN prompt (route_unknown: Asterisk did not say)

Any failure ends in QUEUESTAT=ERROR (or no answer at all, which the dialplan
also treats as ERROR): never in a login.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, NoReturn, Protocol, cast

from .allowlist import AllowlistRead
from .ami import AmiMembers
from .config import CONFIG_PATH, ConfigError, Settings, load_settings
from .decision import decide, utc_now
from .log import LOG_TAG, decision_line, write_log
from .pbx import Channel, Manager, strict_agi
from .pin import ASTDB_FAMILY, DECOY_HASH, LockRecord, verify_pin
from .rules import (
    DENIED,
    ERROR,
    LOGGEDOUT,
    Decision,
    after_route_check,
    confirms_answer,
    normalise_number,
    pin_needed,
    printable,
    rings_again,
)

if TYPE_CHECKING:
    from asterisk.agi import AGI


class Watchdog(Protocol):
    """The call's last-resort bound, re-armed for each stage: when it fires,
    the call ends without an answer and the dialplan's preset ERROR stands."""

    def arm(self, seconds: int) -> None: ...


class ProcessAlarm:
    """The classic script's watchdog: SIGALRM, whose default action ends
    the process (main()). FastAGI's is per connection (qmt.fastagi)."""

    def arm(self, seconds: int) -> None:
        signal.alarm(seconds)


PROCESS_ALARM = ProcessAlarm()


def decide_for_caller(channel: Channel, settings: Settings, config_problem: ConfigError | None,
                      now: datetime.datetime, watchdog: Watchdog = PROCESS_ALARM
                      ) -> tuple[str | None, Decision, AllowlistRead | None]:
    """(number, Decision, AllowlistRead) for this call; number and the read
    are None when the call is refused before any lookup. A checked number
    takes its toggle's lock first (waiting up to 3 s): the database's time
    bound starts after it."""
    if config_problem is not None:
        return None, Decision(ERROR, "config_error", detail=str(config_problem)), None
    if channel.env_problem:
        return None, Decision(DENIED, "bad_agi_env", detail=channel.env_problem), None
    number = normalise_number(channel.caller_number, **settings.number_rules)
    if number is None:
        return None, Decision(DENIED, "invalid_number"), None
    # agi_callerid holds only [+0-9] here, so the dialplan's FILTERed copy
    # of the same caller ID must be the very same text.
    if channel.dialplan_number != channel.caller_number:
        return None, Decision(DENIED, "bad_agi_env",
                              detail="agi_callerid is not the dialplan's caller number (agi_arg_2)"), None
    if not channel.lock_toggle(number):
        return number, Decision(ERROR, "toggle_busy", detail="another call from this number holds the toggle"), \
            None
    watchdog.arm(settings.watchdog_seconds())          # the lock's wait is not the database's
    allowlist = AllowlistRead(settings, number, now)
    return number, decide(channel, settings, number, channel.queue_argument, allowlist.deadline, allowlist,
                          channel.action_argument), allowlist


def check_route(channel: Channel, settings: Settings, number: str, decision: Decision) -> Decision:
    """A login or a resume puts the number back to ringing through the
    outbound route ([member] route): refused (ERROR no_route) when the route
    cannot dial it, for every queue call to it would fail inside the PBX,
    and ERROR route_unknown when Asterisk's answer is neither 1 nor 0. A
    logout never asks: a member may always leave."""
    if rings_again(decision):
        return after_route_check(decision, channel.route_answer(settings.route, number), settings.route, number)
    if pin_needed(decision, None, settings.pin_required, False)[0]:
        # A stranger asked for a PIN all the same (pin.required) asks too and
        # ignores the answer: his requests are a member's, in number and order.
        channel.route_answer(settings.route, number)
    return decision


# Seconds a prompt of the PIN dialogue may take (agent-pass, auth-incorrect).
PROMPT_SECONDS = 8
FIRST_PROMPT, RETRY_PROMPT = "agent-pass", "auth-incorrect"     # "password incorrect, please enter..."


def pin_dialogue_seconds(settings: Settings) -> int:
    """The whole dialogue's bound: every try's prompts and a wait for every
    digit, so a slow typist is never cut off; a stalled Asterisk still is."""
    per_try = 2 * PROMPT_SECONDS + settings.pin_digit_timeout * (settings.pin_max_digits + 1)
    return settings.watchdog_seconds(settings.pin_tries * per_try)


class LockLedger:
    """The number's lockout record in astdb (qmt-pin/<number>), re-read
    before every use so that a lock set meanwhile stands. A stranger (no
    record is ever kept for him) gets the same astdb requests, reads
    instead of writes, so that the time after '#' tells nothing."""

    def __init__(self, channel: Channel, number: str, settings: Settings, counted: bool) -> None:
        self.channel, self.number, self.settings, self.counted = channel, number, settings, counted

    def read(self) -> LockRecord:
        stored = self.channel.astdb_get(ASTDB_FAMILY, self.number)
        return LockRecord.parse(stored) if self.counted else LockRecord()

    def write(self, record: LockRecord) -> None:
        if self.counted:
            self.channel.astdb_put(ASTDB_FAMILY, self.number, record.text())
        else:
            self.channel.astdb_get(ASTDB_FAMILY, self.number)     # the same round trip, nothing kept

    def count_failure(self, now: int) -> LockRecord:
        """One more wrong PIN, unless the number is already locked."""
        record = self.read()
        if not record.locked(now):
            s = self.settings
            record = record.after_failure(now, s.lockout_failures, s.lockout_window, s.lockout_time)
        self.write(record)
        return record


def pin_matches(keyed: str, hashes: Sequence[str]) -> bool:
    """Every hash must accept the PIN. With no hash (a stranger) a decoy of
    the same cost is checked, and fails."""
    return all([verify_pin(keyed, stored) for stored in hashes or [DECOY_HASH]]) and bool(hashes)


def check_pin(channel: Channel, settings: Settings, number: str, decision: Decision,
              allowlist: AllowlistRead | None, watchdog: Watchdog = PROCESS_ALARM) -> Decision:
    """The PIN step: the decision itself when no PIN is needed or the right
    one was keyed; else DENIED (wrong_pin, locked_out, pin_not_set,
    no_pin_keyed or the refusal it had). Wrong PINs of a listed number
    count toward its lockout in astdb; silence does not. A locked number is
    asked all the same and refused."""
    ask, hashes, refusal = pin_needed(decision, allowlist.lookup if allowlist else None,
                                      settings.pin_required, settings.pin_for_logout)
    if not ask:
        return decision
    watchdog.arm(pin_dialogue_seconds(settings))
    ledger = LockLedger(channel, number, settings, counted=refusal is None)
    locked_before = ledger.read().locked(int(time.time()))
    prompt, record, keyed_any = FIRST_PROMPT, LockRecord(), False
    for _ in range(settings.pin_tries):
        keyed = channel.keyed_digits(prompt, 1000 * settings.pin_digit_timeout, settings.pin_max_digits)
        if not keyed:
            prompt = FIRST_PROMPT                    # silence: asked again, never counted
            continue
        keyed_any, right, now = True, pin_matches(keyed, hashes), int(time.time())
        record = ledger.read()
        if right and not record.locked(now):
            if record.failures:
                ledger.write(LockRecord())
            return Decision(decision.state, decision.reason, decision.grants,
                            detail=" ".join(filter(None, [decision.detail, "pin=ok"])),
                            interfaces=decision.interfaces)
        record = ledger.count_failure(now)
        prompt = RETRY_PROMPT
    return pin_refusal(settings, refusal, record, locked_before, keyed_any)


def pin_refusal(settings: Settings, refusal: str | None, record: LockRecord, locked_before: bool,
                keyed_any: bool) -> Decision:
    if record.locked(int(time.time())):
        return Decision(DENIED, "locked_out", detail="locked before this call" if locked_before else
                        "locked by this call")
    if refusal:
        return Decision(DENIED, refusal, detail="%d tries" % settings.pin_tries)
    if not keyed_any:
        return Decision(DENIED, "no_pin_keyed", detail="silence in %d tries: not counted" % settings.pin_tries)
    return Decision(DENIED, "wrong_pin", detail="%d tries" % settings.pin_tries)


def run(agi: AGI, settings: Settings, config_problem: ConfigError | None = None,
        now: datetime.datetime | None = None, watchdog: Watchdog = PROCESS_ALARM,
        manager: Manager | None = None) -> Decision | None:
    """One call: decide, answer the dialplan, log one line. Returns the
    Decision, or None when nothing was answered (the channel went away, or
    Asterisk's replies could not be trusted). The caller armed `watchdog`
    for the start; run() re-arms it for the lookup and the PIN dialogue.
    `manager` answers the manager questions (qmt serve's, on its shared
    connection); by default the call opens its own when one comes."""
    from asterisk.agi import AGIException
    manager = manager or AmiMembers(settings)
    channel = Channel(agi, manager)
    now = now or utc_now()
    number: str | None
    decision: Decision | None
    number, decision = None, None
    try:
        if not channel.in_step():
            # The caller ended the start block early: what we would read
            # next is his text. Say nothing; the preset ERROR stands.
            silent = Decision(ERROR, "agi_out_of_sync", detail=channel.env_problem or "")
            write_log(settings, decision_line(None, channel, silent), True)
            return None
        number, decision, allowlist = decide_for_caller(channel, settings, config_problem, now, watchdog)
        if number is not None:
            # The route before the PIN, as every other refusal that needs no
            # secret (no_such_queue, bad_row, the database's): a call that
            # cannot succeed asks for no PIN, so the caller hears only the
            # error prompt, keys no PIN for nothing, and no wrong PIN of his
            # counts toward a lockout on a call that could not log him in.
            decision = check_route(channel, settings, number, decision)
            decision = check_pin(channel, settings, number, decision, allowlist, watchdog)
        # Only a login carries the ring path's settings (answer_variables).
        ring = settings.ring_variables(confirms_answer(decision.grants, settings.confirm)) \
            if decision.state == LOGGEDOUT else ()
        channel.publish(number, decision, settings.interface_for(number) if number else "", ring)
    except (AGIException, ValueError, EOFError, OSError) as exc:
        # SIGHUP, EOF, 510/511/520, a broken pipe: the dialplan will not read
        # an answer, and its preset QUEUESTAT=ERROR stands. Nothing changed,
        # and the line says so (not the action that was intended).
        intended = decision.action if decision else "decision"
        gone = Decision(ERROR, "channel_gone", detail="%s before the %s: nothing changed" % (
            type(exc).__name__, intended if intended != "none" else "answer"))
        write_log(settings, decision_line(number, channel, gone), True)
        return None
    finally:
        manager.close()
    line = decision_line(number, channel, decision)
    write_log(settings, line, decision.state in (DENIED, ERROR))
    try:
        channel.verbose(line)
    except (AGIException, ValueError, EOFError, OSError):
        pass  # the answer is already set; the console line is a courtesy
    return decision


def internal_error_line(exc: Exception) -> str:
    """The log line of a bug of ours: where, and what, without a traceback."""
    where = cast(TracebackType, exc.__traceback__)      # a caught exception always has one
    while where.tb_next:
        where = where.tb_next
    return "%s: internal error %s at line %d: %s" % (LOG_TAG, type(exc).__name__, where.tb_lineno,
                                                     printable(exc, 160))


def main() -> NoReturn:
    """The AGI script's entry point. Never returns."""
    # The default SIGALRM action kills the process: the last resort if a
    # driver blocks in C past every timeout. The dialplan's preset
    # QUEUESTAT=ERROR then holds.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    try:
        settings, config_problem = load_settings(os.environ.get("QMT_CONFIG", CONFIG_PATH)), None
    except ConfigError as problem:
        settings, config_problem = Settings.defaults(), problem
    PROCESS_ALARM.arm(settings.watchdog_seconds())
    exit_code = 0
    try:
        run(strict_agi(sys.stdin.buffer, sys.stdout), settings, config_problem)
    except Exception as exc:  # a bug of ours: fail closed, one line, no traceback
        write_log(settings, internal_error_line(exc), True)
        exit_code = 1
    try:
        sys.stdout.flush()
    except OSError:
        pass
    # A lookup thread abandoned in a blocked driver call must not hold the
    # process open at interpreter shutdown.
    os._exit(exit_code)
