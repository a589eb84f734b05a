"""Open websockets follow revocation: closed within a second, on every API process.

Each authenticated websocket is registered here (`register`, from the app's on_ws_connect)
under its principal. When the authorisation cache hears of a change to that principal
(tenants/authcache.py: a control message on the live hub's Redis channel, from whichever
process made the change), every connection of it is re-checked against the new state and,
if the change takes rights away, closed with a close code and a reason:

    4403 "the API key has been revoked" / "the API key has expired"
    4403 "the user has been deactivated" / "your role has changed" / "your team has changed"
    4403 "the session has been revoked" (logout, refresh-token reuse, password change)
    4401 "the access token has expired" (unless refreshed in time, see below)

A change that takes nothing away (a higher role) updates the connection's principal in
place. Until the close is sent, `Context.revoked` makes every further operation on the socket
fail with UNAUTHENTICATED. After the hub's Redis subscription reconnects (messages may have
been lost), every connection is re-checked.

Refreshing on an open socket (graphql-transport-ws has no message for it, so this service
adds one): before the access token expires, send
    {"type": "refresh", "payload": {"Authorization": "Bearer <new access token>"}}
with a token of the same user (from the `refresh` mutation). The server answers
    {"type": "refresh_ack", "payload": {"expiresAt": "<ISO time>"}}
and moves the expiry; a bad token or another user's closes the socket with 4403 and the
reason. Clients whose library cannot send custom messages reconnect instead, resuming each
subscription with `after: <last cursor>` (nothing is lost).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.websockets import WebSocket

from saas.errors import Unauthenticated
from schema.context import Context
from tenants.credentials import Authenticator
from tenants.principal import Principal, Role

log = logging.getLogger("schema.live")

EXPIRED = 4401
REVOKED = 4403
RANK = {Role.REP: 0, Role.MANAGER: 1, Role.ADMIN: 2}
Who = tuple[uuid.UUID, str, uuid.UUID]


def _who(principal: Principal) -> Who:
    if principal.api_key_id is not None:
        return (principal.tenant_id, "key", principal.api_key_id)
    assert principal.user_id is not None
    return (principal.tenant_id, "user", principal.user_id)


@dataclasses.dataclass(eq=False)
class Connection:
    context: Context
    who: Who
    timer: asyncio.TimerHandle | None = None
    closing: bool = False


class Connections:
    """This process's authenticated websockets, by principal."""

    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth
        self._by_context: dict[int, Connection] = {}
        self._by_who: dict[Who, set[Connection]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        auth.cache.listeners.append(self.on_change)

    def __len__(self) -> int:
        return len(self._by_context)

    # -- registry ----------------------------------------------------------------------
    def register(self, context: Context) -> None:
        assert context.principal is not None
        conn = Connection(context, _who(context.principal))
        self._by_context[id(context)] = conn
        self._by_who.setdefault(conn.who, set()).add(conn)
        self._schedule_expiry(conn)

    def forget(self, context: Context) -> None:
        conn = self._by_context.pop(id(context), None)
        if conn is None:
            return
        if conn.timer is not None:
            conn.timer.cancel()
        group = self._by_who.get(conn.who)
        if group is not None:
            group.discard(conn)
            if not group:
                del self._by_who[conn.who]

    def _schedule_expiry(self, conn: Connection) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        principal = conn.context.principal
        if principal is None or principal.expires_at is None:
            return
        delay = max(0.0, principal.expires_at - time.time())
        reason = ("the API key has expired" if principal.is_api_key
                  else "the access token has expired")
        code = REVOKED if principal.is_api_key else EXPIRED
        conn.timer = asyncio.get_running_loop().call_later(
            delay, lambda: self._spawn(self.close(conn, code, reason)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- changes -----------------------------------------------------------------------
    def on_change(self, message: dict[str, Any]) -> None:
        """An authorisation cache listener: re-check the connections the change is about."""
        if message.get("control") == "reset":
            targets = list(self._by_context.values())
        else:
            try:
                tenant = uuid.UUID(str(message["tenant"]))
                who: Who = ((tenant, "key", uuid.UUID(str(message["key"]))) if "key" in message
                            else (tenant, "user", uuid.UUID(str(message["user"]))))
            except (KeyError, ValueError):
                return
            targets = list(self._by_who.get(who, ()))
        for conn in targets:
            self._spawn(self.recheck(conn))

    async def recheck(self, conn: Connection) -> None:
        """Close the connection if its principal lost rights; else refresh its principal."""
        principal = conn.context.principal
        if principal is None or conn.closing:
            return
        try:
            reason = await self._lost_rights(conn, principal)
        except Exception:
            log.exception("live: could not re-check a websocket's credentials")
            return
        if reason is not None:
            await self.close(conn, REVOKED, reason)

    async def _lost_rights(self, conn: Connection, principal: Principal) -> str | None:
        cache = self.auth.cache
        if principal.api_key_id is not None:
            key = await cache.key(principal.tenant_id, principal.api_key_id)
            if key is None or key.revoked:
                return "the API key has been revoked"
            if key.expires_at is not None and key.expires_at <= time.time():
                return "the API key has expired"
            return None
        assert principal.user_id is not None
        state = await cache.user(principal.tenant_id, principal.user_id, principal.session_id)
        if state is None or not state.is_active:
            return "the user has been deactivated"
        if principal.session_id is not None and (not state.session_found
                                                 or state.session_revoked):
            return "the session has been revoked"
        role = Role(state.role)
        if principal.role is not None and RANK[role] < RANK[principal.role]:
            return "your role has changed"
        if state.team_id != principal.team_id:
            return "your team has changed"
        if role != principal.role:
            conn.context.principal = dataclasses.replace(principal, role=role)
        return None

    async def close(self, conn: Connection, code: int, reason: str) -> None:
        if conn.closing:
            return
        conn.closing = True
        conn.context.revoked = Unauthenticated(reason)
        ws = conn.context.request
        self.forget(conn.context)
        if not isinstance(ws, WebSocket):
            return
        try:
            await ws.close(code=code, reason=reason)
        except (RuntimeError, OSError):
            pass  # already closing or gone

    # -- the refresh message -----------------------------------------------------------
    async def refresh(self, handler: Any, message: dict[str, Any]) -> None:
        """A new access token for an open socket (see the module docstring)."""
        context: Context = handler.context
        conn = self._by_context.get(id(context))
        payload = message.get("payload")
        authorization = payload.get("Authorization") if isinstance(payload, dict) else None
        current = context.principal
        if conn is None or current is None:
            await handler.websocket.close(code=4401, reason="Unauthorized")
            return
        try:
            if not isinstance(authorization, str):
                raise Unauthenticated("a refresh needs 'Authorization: Bearer <access token>'")
            fresh = await self.auth.authenticate(authorization=authorization, api_key=None,
                                                 address=current.address)
            if (fresh is None or fresh.is_api_key or current.is_api_key
                    or _who(fresh) != conn.who):
                raise Unauthenticated("a refresh must carry an access token of the same user")
        except Unauthenticated as e:
            await self.close(conn, REVOKED, e.message)
            return
        context.principal = fresh
        self._schedule_expiry(conn)
        expires = (datetime.fromtimestamp(fresh.expires_at, UTC).isoformat()
                   if fresh.expires_at else None)
        await handler.send_message({"type": "refresh_ack", "payload": {"expiresAt": expires}})

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
