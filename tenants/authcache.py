"""What users, sessions and API keys may do right now, cached per process.

Every request checks its credential against this state (tenants/credentials.py), so a role
change, a deactivation, a logout or a revoked key applies to the very next request. Kept
cheap: entries live in process memory, and changes are pushed to every API process as
control messages on the live hub's one Redis channel (`publish_change` queues one on the
unit of work, sent only after commit; `on_control` receives them, locally at once and from
the other processes through Redis). AUTH_CACHE_TTL_SECONDS (5 s) is only the backstop for
a lost message; when the hub's Redis subscription reconnects, everything is dropped.

A miss costs one statement (auth_state() / api_key_state(), migration 0011, which enter
the tenant themselves); concurrent misses of one entry share it. An invalidation that
arrives while a miss is being read wins: the read result is used once but not kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from saas.db import Database, UnitOfWork

log = logging.getLogger("tenants.auth")

MAX_ENTRIES = 100_000
CONTROL = "auth"

Listener = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class UserState:
    role: str
    team_id: uuid.UUID | None
    is_active: bool
    epoch: int
    session_found: bool
    session_revoked: bool
    session_expires_at: datetime | None


@dataclass(frozen=True)
class KeyState:
    secret_hash: str
    scopes: frozenset[str]
    revoked: bool
    expires_at: float | None
    previous_hash: str | None
    previous_expires_at: float | None
    last_used_at: float | None


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def publish_change(uow: UnitOfWork, *, reason: str, user_id: uuid.UUID | None = None,
                   api_key_id: uuid.UUID | None = None,
                   session_id: uuid.UUID | None = None) -> None:
    """After this unit of work commits, every API process forgets the principal's state
    (and closes its websockets if the change takes rights away: schema/live/revocation.py)."""
    message: dict[str, object] = {"control": CONTROL, "tenant": str(uow.tenant_id),
                                  "reason": reason}
    for name, value in (("user", user_id), ("key", api_key_id), ("session", session_id)):
        if value is not None:
            message[name] = str(value)
    uow.publish(message)


class AuthCache:
    """Per-process authorisation state of users (with their session) and API keys."""

    def __init__(self, db: Database, *, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.ttl = ttl
        self.clock = clock
        self.listeners: list[Listener] = []
        self._entries: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._generations: dict[tuple[Any, ...], int] = {}
        self._epoch = 0  # bumped by reset(): every read in flight is discarded
        self._inflight: dict[tuple[Any, ...], asyncio.Future[Any]] = {}
        self.misses = 0

    # -- reads -------------------------------------------------------------------------
    async def user(self, tenant_id: uuid.UUID, user_id: uuid.UUID,
                   session_id: uuid.UUID | None) -> UserState | None:
        key = ("u", tenant_id, user_id, session_id)
        found = self._entries.get(key)  # the hot path: no coroutine, no lambda
        if found is not None and found[0] > self.clock():
            return found[1]  # type: ignore[no-any-return]
        state: UserState | None = await self._get(key, lambda: self._read_user(key))
        return state

    async def key(self, tenant_id: uuid.UUID, key_id: uuid.UUID) -> KeyState | None:
        key = ("k", tenant_id, key_id)
        state: KeyState | None = await self._get(key, lambda: self._read_key(key))
        return state

    async def _get(self, key: tuple[Any, ...],
                   read: Callable[[], Awaitable[Any]]) -> Any:
        found = self._entries.get(key)
        if found is not None and found[0] > self.clock():
            return found[1]
        pending = self._inflight.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise  # this request was cancelled, not the one reading for it
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        start = (self._epoch, self._generation(key))
        try:
            value = await read()
        except Exception as e:
            future.set_exception(e)
            future.exception()  # retrieved: waiters get it re-raised
            raise
        except BaseException:  # cancelled: the waiters read again themselves
            future.cancel()
            raise
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
        if start == (self._epoch, self._generation(key)):
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = (self.clock() + self.ttl, value)
        future.set_result(value)
        return value

    def _generation(self, key: tuple[Any, ...]) -> int:
        return self._generations.get(key[:3], 0)

    async def _fetch(self, sql: str, *args: Any) -> Any:
        self.misses += 1
        async with self.db.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            return await driver.fetchrow(sql, *args)

    async def _read_user(self, key: tuple[Any, ...]) -> UserState | None:
        _, tenant_id, user_id, session_id = key
        row = await self._fetch("SELECT * FROM auth_state($1, $2, $3)", tenant_id, user_id,
                                session_id)
        if row is None:
            return None
        return UserState(role=row["role"], team_id=row["team_id"], is_active=row["is_active"],
                         epoch=row["auth_epoch"], session_found=row["session_found"],
                         session_revoked=row["session_revoked"],
                         session_expires_at=row["session_expires_at"])

    async def _read_key(self, key: tuple[Any, ...]) -> KeyState | None:
        _, tenant_id, key_id = key
        row = await self._fetch("SELECT * FROM api_key_state($1, $2)", tenant_id, key_id)
        if row is None:
            return None
        return KeyState(secret_hash=row["secret_hash"], scopes=frozenset(row["scopes"]),
                        revoked=row["revoked_at"] is not None,
                        expires_at=_ts(row["expires_at"]),
                        previous_hash=row["previous_secret_hash"],
                        previous_expires_at=_ts(row["previous_expires_at"]),
                        last_used_at=_ts(row["last_used_at"]))

    # -- invalidation ------------------------------------------------------------------
    def _forget(self, prefix: tuple[Any, ...]) -> None:
        self._generations[prefix] = self._generations.get(prefix, 0) + 1
        for key in [k for k in self._entries if k[:3] == prefix]:
            del self._entries[key]

    def reset(self) -> None:
        """Forget everything (the Redis subscription reconnected: messages may be lost)."""
        self._epoch += 1
        self._entries.clear()
        self._generations.clear()

    def on_control(self, message: dict[str, Any]) -> None:
        """A control message of the live hub (this process's or another's)."""
        kind = message.get("control")
        if kind == "reset":
            self.reset()
        elif kind == CONTROL:
            try:
                tenant = uuid.UUID(str(message["tenant"]))
                if "user" in message:
                    self._forget(("u", tenant, uuid.UUID(str(message["user"]))))
                if "key" in message:
                    self._forget(("k", tenant, uuid.UUID(str(message["key"]))))
            except (KeyError, ValueError) as e:
                log.warning("ignoring a malformed auth message %r (%s)", message, e)
                return
        else:
            return
        for listener in self.listeners:
            try:
                listener(message)
            except Exception:
                log.exception("an auth change listener failed")
