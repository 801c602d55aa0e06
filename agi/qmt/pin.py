"""PINs against caller-ID spoofing: the stored hash, and the lockout rules.

Pure (the standard library only, no I/O but the salt): the AGI keeps the
lockout record in Asterisk's astdb and asks for the digits; `qmt hash-pin`
makes the hash for the table's pin_hash column.

A hash is "pbkdf2_sha256$<iterations>$<salt hex>$<digest hex>": the
parameters travel with it, so raising ITERATIONS later keeps old hashes
valid. A PIN has few digits, so the hash mostly protects a leaked table for
a while; what stops guessing on the phone is the lockout.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .dialplan import PIN_FAMILY

if TYPE_CHECKING:
    from .rules import Grant

SCHEME = "pbkdf2_sha256"
ITERATIONS = 150_000          # about 50 ms here: see tests/bench_agi.py --pin
HASH = re.compile(r"pbkdf2_sha256\$(\d{4,7})\$([0-9a-f]{32})\$([0-9a-f]{64})\Z")
ASTDB_FAMILY = PIN_FAMILY     # key: the number; value: LockRecord.text()
# What a stranger's PIN is checked against: costs what a real hash costs,
# matches nothing (no PIN hashes to a digest of zeros that anyone can find).
DECOY_HASH = "%s$%d$%s$%s" % (SCHEME, ITERATIONS, "0" * 32, "0" * 64)


def is_pin(text: object, min_length: int = 4, max_length: int = 12) -> bool:
    """Only ASCII digits (not Arabic-Indic or full-width), of an allowed length."""
    return isinstance(text, str) and min_length <= len(text) <= max_length and \
        all("0" <= char <= "9" for char in text)


def hash_pin(pin: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode("ascii"), salt, iterations)
    return "%s$%d$%s$%s" % (SCHEME, iterations, salt.hex(), digest.hex())


def is_pin_hash(stored: object) -> bool:
    return isinstance(stored, str) and bool(HASH.match(stored.strip()))


def verify_pin(pin: str, stored: object) -> bool:
    """True only for the right PIN; any malformed input is simply wrong."""
    import hmac  # here: a call without a PIN never pays for it
    match = HASH.match(stored.strip()) if isinstance(stored, str) else None
    if match is None or not is_pin(pin, 1, 64):
        return False
    iterations, salt, digest = int(match.group(1)), bytes.fromhex(match.group(2)), bytes.fromhex(match.group(3))
    return hmac.compare_digest(hashlib.pbkdf2_hmac("sha256", pin.encode("ascii"), salt, iterations), digest)


class LockRecord:
    """Wrong PINs of one number: how many since `first` (epoch seconds) and
    until when it is locked (0: not locked)."""

    __slots__ = ("failures", "first", "locked_until")

    def __init__(self, failures: int = 0, first: int = 0, locked_until: int = 0) -> None:
        self.failures, self.first, self.locked_until = failures, first, locked_until

    @classmethod
    def parse(cls, text: str | None) -> LockRecord:
        """From astdb; anything unreadable counts as no record."""
        parts = (text or "").strip().split(",")
        if len(parts) != 3 or not all(part.isascii() and part.isdigit() and len(part) <= 12 for part in parts):
            return cls()
        return cls(*(int(part) for part in parts))

    def text(self) -> str:
        return "%d,%d,%d" % (self.failures, self.first, self.locked_until)

    def locked(self, now: int) -> bool:
        return now < self.locked_until

    def after_failure(self, now: int, max_failures: int, window: int, lock_seconds: int) -> LockRecord:
        """The record after one more wrong PIN at `now`: failures older than
        the window start a new count; the max-th within it locks."""
        failures, first = (self.failures + 1, self.first) if now - self.first < window else (1, now)
        if failures >= max_failures:
            return LockRecord(0, now, now + lock_seconds)
        return LockRecord(failures, first, self.locked_until)


def hashes_to_check(grants: Iterable[Grant]) -> list[str]:
    """The distinct pin_hash values of the grants a call acts on (every one
    must accept the PIN); empty when none needs one."""
    return sorted({grant.pin_hash.strip() for grant in grants if grant.pin_hash})
