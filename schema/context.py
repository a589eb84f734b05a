"""Per-request context: services, the verified principal, and request-scoped loaders."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import strawberry
from starlette.requests import Request
from starlette.websockets import WebSocket

from saas.db import Database, UnitOfWork
from saas.errors import Unauthenticated
from saas.settings import Settings
from tenants.principal import Principal
from tenants.scopes import Scope


@dataclass
class Services:
    """Long-lived things every request shares; built once in the app's lifespan."""

    settings: Settings
    db: Database
    redis: Any = None
    hub: Any = None  # the live event hub (subscriptions), once started
    auth: Any = None  # tenants.credentials.Authenticator (with its authorisation cache)
    throttle: Any = None  # tenants.throttle.LoginThrottle
    connections: Any = None  # schema.live.revocation.Connections (open websockets)
    limiter: Any = None  # saas.ratelimit.Limiter (None: rate limits off)
    _queue: Any = None
    _outbox: Any = None

    @property
    def outbox(self) -> Any:
        """saas.outbox.Relay: jobs written with a change are enqueued after its commit."""
        if self._outbox is None:
            from saas.outbox import Relay

            self._outbox = Relay(self.db, self.queue,
                                 timeout=self.settings.outbox_relay_timeout_seconds)
        return self._outbox

    async def queue(self) -> Any:
        """The arq pool for enqueueing jobs, opened on first use."""
        if self._queue is None:
            from saas import jobs

            self._queue = await jobs.connect(self.settings)
        return self._queue

    async def close(self) -> None:
        if self._queue is not None:
            await self._queue.aclose()
            self._queue = None


@dataclass
class Context:
    """What resolvers get as `info.context`."""

    services: Services
    request: Request | WebSocket | None = None
    response: Any = None
    principal: Principal | None = None
    auth_error: Unauthenticated | None = None
    loaders: dict[str, Any] = field(default_factory=dict)
    # graphql-transport-ws: strawberry stores connection_init's payload here.
    connection_params: dict[str, Any] | None = None
    # A read transaction the response cache already opened for this request (under the
    # principal's tenant): a cacheable board renders in it instead of opening another.
    pinned_uow: UnitOfWork | None = None
    # HTTP: the document the edge parsed and validated for this request (schema.edge).
    document: Any = None
    cost: Any = None  # schema.cost.Cost of this request's operation, once known
    throttle: Any = None  # saas.ratelimit.Decision: what the operation's buckets said
    # An idempotent mutation (schema/idempotency.py) pins its transaction here too: then each
    # use is a savepoint (a failed resolver leaves nothing behind) and uses take turns, as
    # one session serves one statement at a time.
    pinned_savepoints: bool = False
    _pinned_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Websockets: set when the connection's credential was revoked or expired (the socket
    # is being closed), so no further operation on it runs.
    revoked: Unauthenticated | None = None

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def require_principal(self) -> Principal:
        """The caller, or a typed UNAUTHENTICATED error that says what was wrong."""
        if self.auth_error is not None:
            raise self.auth_error
        if self.revoked is not None:
            raise self.revoked
        if self.principal is None:
            raise Unauthenticated(
                "authentication required: send 'Authorization: Bearer <JWT or API key>'"
            )
        return self.principal

    def require(self, scope: Scope) -> Principal:
        """The caller, if it holds `scope` (checked before any input is looked at, so a
        caller without it learns nothing about ids or validation)."""
        principal = self.require_principal()
        principal.require(scope)
        return principal

    @property
    def address(self) -> str | None:
        client = getattr(self.request, "client", None)
        return client.host if client is not None else None

    @asynccontextmanager
    async def uow(self, tenant_id: uuid.UUID | None = None) -> AsyncIterator[UnitOfWork]:
        """A unit of work under the caller's tenant (never a client-supplied one)."""
        principal = self.require_principal()
        if self.pinned_uow is not None and tenant_id in (None, principal.tenant_id):
            if not self.pinned_savepoints:
                yield self.pinned_uow
                return
            async with self._pinned_lock, self.pinned_uow.session.begin_nested():
                yield self.pinned_uow
            return
        async with self.db.unit_of_work(tenant_id or principal.tenant_id) as uow:
            yield uow


Info = strawberry.Info[Context, None]
