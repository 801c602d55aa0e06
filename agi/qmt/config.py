"""The configuration file, read once per run and validated."""

from __future__ import annotations

import configparser
import datetime
import re
from typing import TypedDict

from .dialplan import MEMBER_INTERFACE, RING_DEFAULTS, RING_SETTINGS
from .rules import ASCII_DIGITS, INTERFACE, MAX_DIGITS, QUEUE_NAME, interface_for, number_in_interfaces

# The member interface of every login: the project's ring path (the
# dialplan's [qmt-ring]), which dials the outbound route in `route`.
RING_INTERFACE = MEMBER_INTERFACE
CONTEXT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
SOUND_NAME = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*\Z")
FIXED_CALLER_ID = re.compile(r"\+?[0-9]{1,20}\Z")

CONFIG_PATH = "/etc/asterisk/queue_mobile_toggle.conf"
DEFAULT_DSN = "queue_mobile_toggle"              # install.sh's SQLite allowlist
DEFAULT_CONNECTION = "DSN=" + DEFAULT_DSN
DEFAULT_AMI_PORT = "5038"                        # Asterisk's own default too
DEFAULT_FASTAGI_PORT = "4573"                    # res_agi's AGI_PORT: agi:// without a port
# Where install.sh puts the sweep (`qmt sweep --apply` every 5 minutes):
# systemd's units, else a cron file. `qmt doctor` looks for them there.
SWEEP_UNITS = "/etc/systemd/system/qmt-sweep"    # .service and .timer
SWEEP_CRON = "/etc/cron.d/queue-mobile-toggle"
SYSLOG_FACILITIES = ("user", "daemon") + tuple("local%d" % n for n in range(8))


class NumberRules(TypedDict):
    """The keyword arguments of rules.normalise_number / typed_number."""
    country_code: str
    trunk_prefix: str
    national_length: int


class ConfigError(Exception):
    """The configuration file is missing or holds a bad value."""


class Settings:
    """Validated settings; built once per run from the INI file. Never
    absent: a run whose file is bad gets Settings.defaults() beside the
    problem (it logs as the defaults say and refuses every call)."""

    def __init__(self, parser: configparser.ConfigParser) -> None:
        get = parser.get
        self.connection = get("database", "connection", fallback=DEFAULT_CONNECTION).strip()
        self.timeout = _positive_float(get("database", "timeout", fallback="3"), "database.timeout")
        self._read_member(parser)
        self.country_code = _digits(get("numbers", "country_code", fallback="7"), "numbers.country_code")
        self.trunk_prefix = _digits(get("numbers", "trunk_prefix", fallback="8"), "numbers.trunk_prefix",
                                    allow_empty=True)
        self.national_length = _whole(get("numbers", "national_length", fallback="10"),
                                      "numbers.national_length", 1, MAX_DIGITS)
        self.managed_queues = _queue_list(get("queues", "managed", fallback=""))
        # The zone shift windows are read in: the PBX's ($TZ, /etc/localtime)
        # unless named; looked up only when a row has a shift (shift_zone).
        self.shift_zone_name = get("shifts", "zone", fallback="").strip()
        self._shift_zone = _zone(self.shift_zone_name) if self.shift_zone_name else None
        self.log_target = get("log", "target", fallback="syslog").strip() or "syslog"
        self.syslog_facility = get("log", "syslog_facility", fallback="local0").strip().lower()
        # The manager account of the `qmt` command (install.sh writes it).
        self.ami_host = get("ami", "host", fallback="127.0.0.1").strip()
        self.ami_port = _whole(get("ami", "port", fallback=DEFAULT_AMI_PORT), "ami.port", 1, 65535)
        self.ami_username = get("ami", "username", fallback="").strip()
        self.ami_secret = get("ami", "secret", fallback="").strip()
        # `qmt serve`, the optional FastAGI server (qmt.fastagi).
        self.fastagi_port = _whole(get("fastagi", "port", fallback=DEFAULT_FASTAGI_PORT), "fastagi.port", 1, 65535)
        # PINs (README, Security): who needs one, how long to wait, the lockout.
        self.pin_required = _yes_no(get("pin", "required", fallback="no"), "pin.required")
        self.pin_for_logout = _yes_no(get("pin", "for_logout", fallback="no"), "pin.for_logout")
        self.pin_min_length = _whole(get("pin", "min_length", fallback="4"), "pin.min_length", 1, 12)
        self.pin_max_digits = _whole(get("pin", "max_digits", fallback="8"), "pin.max_digits", 1, 12)
        self.pin_digit_timeout = _whole(get("pin", "digit_timeout", fallback="5"), "pin.digit_timeout", 1, 30)
        self.pin_tries = _whole(get("pin", "tries", fallback="3"), "pin.tries", 1, 5)
        self.lockout_failures = _whole(get("pin", "lockout_failures", fallback="5"), "pin.lockout_failures", 1, 100)
        self.lockout_window = 60 * _whole(get("pin", "lockout_window", fallback="15"), "pin.lockout_window",
                                          1, 1440)
        self.lockout_time = 60 * _whole(get("pin", "lockout_minutes", fallback="15"), "pin.lockout_minutes",
                                        1, 10080)
        if self.pin_min_length > self.pin_max_digits:
            raise ConfigError("pin.min_length must not exceed pin.max_digits")
        if not self.connection:
            raise ConfigError("database.connection is empty")
        if self.syslog_facility not in SYSLOG_FACILITIES:
            raise ConfigError("log.syslog_facility must be one of " + ", ".join(SYSLOG_FACILITIES))

    def _read_member(self, parser: configparser.ConfigParser) -> None:
        """[member]: the ring path's settings, and the older interfaces a
        member may still be in by. Before the ring path, `interface` was the
        member interface itself (Local/{number}@<route>/n): an existing
        config that has it keeps its route and its members can leave."""
        get = parser.get
        self.interface_template = RING_INTERFACE
        legacy = get("member", "interface", fallback="").strip()
        if legacy and (legacy.count("{number}") != 1 or not INTERFACE.match(legacy.replace("{number}", "0"))):
            raise ConfigError("member.interface must contain {number} once and only a channel name's characters")
        legacy_route = re.match(r"Local/\{number\}@([A-Za-z0-9_-]+)/n\Z", legacy)
        self.route = get("member", "route", fallback=legacy_route.group(1) if legacy_route else
                         str(RING_DEFAULTS["route"])).strip()
        if not CONTEXT_NAME.match(self.route):
            raise ConfigError("member.route must be a dialplan context name")
        older = ["Local/{number}@%s/n" % self.route] + ([legacy] if legacy else [])
        self.old_templates = [template for template in dict.fromkeys(older) if template != RING_INTERFACE]
        # A whole number that defaults as the dialplan does.
        def ring_number(option: str, key: str, low: int, high: int) -> int:
            return _whole(get("member", option, fallback=str(RING_DEFAULTS[key])), "member." + option, low, high)
        self.ring_seconds = ring_number("ring_seconds", "ring_seconds", 1, 600)
        self.confirm = _yes_no(get("member", "confirm", fallback="yes"), "member.confirm")
        self.answer_wait = ring_number("answer_wait", "answer_wait", 1, 30)
        self.pause_after = ring_number("pause_after_missed", "pause_after", 0, 100)
        self.announce = get("member", "announce", fallback="").strip()
        if self.announce and not SOUND_NAME.match(self.announce):
            raise ConfigError("member.announce must be a sound file name (letters, digits, _ - /)")
        callerid = get("member", "callerid", fallback="customer").strip()
        if callerid != "customer" and not FIXED_CALLER_ID.match(callerid):
            raise ConfigError("member.callerid must be 'customer' or a number")
        self.fixed_callerid = "" if callerid == "customer" else callerid
        # A break from the phone ends by itself after this many minutes (the
        # sweep resumes it; 0: only a call ends it). Fractions are allowed.
        self.break_minutes = _minutes(get("member", "break_minutes", fallback="0"), "member.break_minutes")

    @property
    def shift_zone(self) -> datetime.tzinfo:
        """The zone of shift windows (read once, when first needed)."""
        if self._shift_zone is None:
            self._shift_zone = _zone("")
        return self._shift_zone

    @classmethod
    def defaults(cls) -> Settings:
        """The settings of an empty file: every key at its default."""
        return cls(configparser.ConfigParser(interpolation=None))

    # -- time bounds: database.timeout is read here and nowhere else ---------

    def database(self, dsn: str | None = None) -> tuple[str, float]:
        """(connection string, seconds) of an allowlist read or write: the
        config's connection, or DSN=dsn (an admin's writer account)."""
        return ("DSN=" + dsn if dsn else self.connection), self.timeout

    @property
    def ami_timeout(self) -> float:
        """The manager socket's bound: the database's, but never under 2 s."""
        return max(2.0, self.timeout)

    def watchdog_seconds(self, extra: int = 0) -> int:
        """The AGI process's last-resort alarm (SIGALRM): the database's bound
        in whole seconds, `extra` for prompts, and 3 s for Asterisk's replies."""
        return int(self.timeout) + extra + 3

    def interface_for(self, number: str) -> str:
        return interface_for(self.interface_template, number)

    @property
    def member_templates(self) -> list[str]:
        """Every interface template a member of ours may be in by: the ring path's first."""
        return [self.interface_template] + self.old_templates

    def interfaces_for(self, number: str) -> list[str]:
        return [interface_for(template, number) for template in self.member_templates]

    def number_of_member(self, interface: object) -> str | None:
        """The number of a member interface of ours (any template), or None."""
        return number_in_interfaces(self.member_templates, interface)

    def ring_variables(self, confirm: bool) -> list[tuple[str, str]]:
        """QMT_RING_*: what the dialplan stores in astdb at login for the
        ring path, which runs without Python."""
        values = {"route": self.route, "ring_seconds": str(self.ring_seconds), "confirm": "1" if confirm else "0",
                  "answer_wait": str(self.answer_wait), "pause_after": str(self.pause_after),
                  "callerid": self.fixed_callerid, "announce": self.announce}
        return [(variable, values[key]) for variable, key in RING_SETTINGS]

    @property
    def number_rules(self) -> NumberRules:
        """The keyword arguments of rules.normalise_number / typed_number."""
        return dict(country_code=self.country_code, trunk_prefix=self.trunk_prefix,
                    national_length=self.national_length)


def _positive_float(text: str, key: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError("%s is not a number" % key) from None
    if not 0 < value <= 60:
        raise ConfigError("%s must be between 0 and 60 seconds" % key)
    return value


def _minutes(text: str, key: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ConfigError("%s is not a number of minutes" % key) from None
    if not 0 <= value <= 1440:
        raise ConfigError("%s must be from 0 to 1440 minutes" % key)
    return value


def _zone(name: str) -> datetime.tzinfo:
    """The named IANA zone, or the PBX's own when `name` is empty."""
    from .zones import local_zone
    try:
        return local_zone(name or None)[0]
    except (KeyError, ValueError):
        raise ConfigError("shifts.zone: no such time zone %r (an IANA name, e.g. Europe/Moscow)" % name) from None


def _yes_no(text: str, key: str) -> bool:
    value = text.strip().lower()
    if value not in ("yes", "no", "true", "false", "1", "0", "on", "off"):
        raise ConfigError("%s must be yes or no" % key)
    return value in ("yes", "true", "1", "on")


def _whole(text: str, key: str, low: int, high: int) -> int:
    text = text.strip()
    if not text or set(text) - ASCII_DIGITS or len(text) > 6 or not low <= int(text) <= high:
        raise ConfigError("%s must be a whole number from %d to %d" % (key, low, high))
    return int(text)


def _digits(text: str, key: str, allow_empty: bool = False) -> str:
    text = text.strip()
    if (not text and not allow_empty) or set(text) - ASCII_DIGITS or len(text) > 4:
        raise ConfigError("%s must be 1 to 4 digits" % key)
    return text


def _queue_list(text: str) -> list[str]:
    queues = [q.strip() for q in text.split(",") if q.strip()]
    for queue in queues:
        if not QUEUE_NAME.match(queue):
            raise ConfigError("queues.managed holds a bad queue name")
    return queues


def load_settings(path: str = CONFIG_PATH) -> Settings:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError("cannot read %s: %s" % (path, exc.strerror)) from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError("cannot parse %s: %s" % (path, type(exc).__name__)) from None
    return Settings(parser)
