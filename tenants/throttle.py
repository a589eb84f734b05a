"""Login throttling shared by every API process: attempts per account and per address.

A fixed window per key in Redis, counted by one Lua script (INCR, and EXPIRE on the first
attempt), so concurrent attempts (aliases in one document, several processes) are counted
exactly: each `login` field is one attempt, counted before its password is checked. Over
either limit the attempt is refused without checking the password: LIMIT_EXCEEDED, "too many
login attempts; retry in N s". A successful login clears its account's window (not the
address's). Keys are per deployment (`<live channel prefix>:login:...`), so test runs
sharing one Redis never meet.
"""

from __future__ import annotations

import hashlib
from typing import Any

from saas.errors import LimitExceeded
from saas.live.config import LiveSettings, channel_for
from saas.settings import Settings

_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""


def _digest(value: str) -> str:
    # Account names are personal data: keys hold a hash, not the e-mail address.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class LoginThrottle:
    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.prefix = channel_for(settings, LiveSettings()).removesuffix(":events") + ":login"
        self._script = redis.register_script(_COUNT)

    def _keys(self, tenant: str, email: str, address: str | None) -> tuple[str, str]:
        name = f"{tenant.strip().lower()}|{email.strip().lower()}"
        account = f"{self.prefix}:account:{_digest(name)}"
        return account, f"{self.prefix}:address:{_digest(address or 'unknown')}"

    async def attempt(self, *, tenant: str, email: str, address: str | None) -> None:
        """Count one attempt; LIMIT_EXCEEDED (with `retry_after`) when over a limit."""
        s = self.settings
        account, by_address = self._keys(tenant, email, address)
        n_account, ttl_account = await self._script(keys=[account],
                                                    args=[s.login_window_seconds])
        n_address, ttl_address = await self._script(keys=[by_address],
                                                    args=[s.login_window_seconds])
        waits = []
        if int(n_account) > s.login_max_per_account:
            waits.append(int(ttl_account))
        if int(n_address) > s.login_max_per_address:
            waits.append(int(ttl_address))
        if waits:
            retry = max(1, max(waits))
            raise LimitExceeded(f"too many login attempts; retry in {retry} s",
                                retry_after=retry)

    async def succeeded(self, *, tenant: str, email: str, address: str | None) -> None:
        account, _ = self._keys(tenant, email, address)
        await self.redis.delete(account)
