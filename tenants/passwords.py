"""Password hashing (argon2id) off the event loop, and the password rules.

Hashes use argon2id with OWASP's first profile (memory 19 MiB, time cost 2, one lane),
16-byte salt, 32-byte hash; hashes made with other parameters still verify and are re-hashed
on the next successful login. Verifying takes tens of milliseconds of CPU, so it never runs
on the event loop: a small dedicated thread pool at nice 10 (PASSWORD_HASH_THREADS, default:
one fewer than the cores, at least one) does it; argon2 releases the GIL, so other requests
go on meanwhile, and a flood of logins queues there instead of taking every core from
everyone else.

Rules: 10-256 characters, not only whitespace, not the account's e-mail address, and not
one of a short list of the most common passwords. No composition rules (NIST SP 800-63B).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from saas.errors import ValidationFailed

MIN_LENGTH = 10
MAX_LENGTH = 256
COMMON = frozenset({
    "password", "password1", "password12", "password123", "password1234", "1234567890",
    "12345678910", "qwertyuiop", "qwerty1234", "iloveyou12", "letmein123", "welcome123",
    "admin12345", "changeme123", "abcdefghij", "0123456789", "1111111111", "passw0rd12",
})

# OWASP's first argon2id profile (19 MiB, 2 passes, 1 lane). One lane keeps a hash on one
# core, so a login flood on a 2-core box leaves the other core to the event loop (the
# argon2-cffi default of 4 lanes took ~1.6 cores per hash); hashes made with other
# parameters still verify, and are re-hashed with these on the next successful login.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def _lower_priority() -> None:
    """Hashing threads run at nice 10: on a busy box the scheduler prefers the event loop's
    thread, so a login flood queues logins instead of slowing every other request. On Linux
    a thread's nice value is its own (setpriority with the thread id)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # not Linux, or not permitted: same work, no preference
        pass


_pool = ThreadPoolExecutor(
    max_workers=int(os.environ.get("PASSWORD_HASH_THREADS", "0"))
    or max(1, (os.cpu_count() or 2) - 1),
    thread_name_prefix="argon2", initializer=_lower_priority)


def check_rules(password: str, *, email: str | None = None, field: str = "password") -> None:
    """VALIDATION_FAILED (naming `field`) unless `password` follows the rules above."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise ValidationFailed(
            f"a password has {MIN_LENGTH}-{MAX_LENGTH} characters", field=field)
    if not password.strip():
        raise ValidationFailed("a password cannot be only spaces", field=field)
    lowered = password.lower()
    if lowered in COMMON:
        raise ValidationFailed("this password is too common; choose another", field=field)
    if email and lowered == email.strip().lower():
        raise ValidationFailed("a password cannot be your e-mail address", field=field)


def needs_rehash(password_hash: str) -> bool:
    """True for a hash made with other parameters than `_hasher`'s (e.g. before they changed)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return False


def hash_sync(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def _dummy_hash() -> str:
    # Same parameters as real hashes: verifying against it takes as long as a real check.
    return _hasher.hash("not-a-real-password")


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_pool, _hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches; without a hash (unknown account) the same work is done
    against a dummy hash and the answer is False, so timing does not tell them apart."""
    return await asyncio.get_running_loop().run_in_executor(_pool, _verify, password_hash,
                                                            password)
