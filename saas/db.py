"""Engines and the unit of work: one transaction, the tenant set inside it, hooks after commit."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import DateTime, event, exc, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from saas.observability import tracing
from saas.settings import async_url

AfterCommit = Callable[[], Awaitable[None]]
Publisher = Callable[[list[dict[str, object]]], Awaitable[None]]

SET_TENANT = text("SELECT set_config('app.tenant_id', :tenant_id, true)")


class Base(DeclarativeBase):
    """Declarative base of every ORM model; the schema itself is owned by the migrations."""

    type_annotation_map = {datetime: DateTime(timezone=True)}


def _json_loads(value: str) -> Any:
    """jsonb/json column values: orjson (several times faster than json, which matters for a
    board's 200 custom_fields), with json's result for what orjson refuses (integers beyond
    64 bits), so decoded values are exactly what json.loads gives."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return json.loads(value)


# A pooled connection is pinged before use only when it sat idle at least this long: a busy
# pool (the board's hot path) does not pay a round trip per checkout, and a connection that
# waited through a PostgreSQL restart or an idle timeout is tested and replaced.
PING_AFTER_IDLE_SECONDS = 2.0


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10,
                  ping_after_idle: float = PING_AFTER_IDLE_SECONDS,
                  statement_timeout_ms: int | None = None) -> AsyncEngine:
    """An asyncpg engine whose pool tests connections that were idle (see above); with
    `statement_timeout_ms`, PostgreSQL cancels any statement running longer (the API's
    requests: no query holds a pooled connection for minutes)."""
    connect_args: dict[str, Any] = {}
    if statement_timeout_ms:
        connect_args["server_settings"] = {"statement_timeout": str(statement_timeout_ms)}
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        json_deserializer=_json_loads,
        connect_args=connect_args,
        # Statement cache off would cost a round trip per query; keep asyncpg's default.
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _fresh(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkin")
    def _idle(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        # SQLAlchemy's documented pessimistic-disconnect recipe, limited to idle connections:
        # DisconnectionError makes the pool discard this one and connect afresh.
        if time.monotonic() - record.info.get("idle_since", 0.0) < ping_after_idle:
            return
        try:
            dbapi_connection.ping()
        except Exception as e:
            raise exc.DisconnectionError() from e

    tracing.instrument_engine(engine)  # a span per statement when tracing is on
    return engine


@dataclass
class UnitOfWork:
    """A transaction bound to one tenant; callbacks registered here run only after commit."""

    session: AsyncSession
    tenant_id: uuid.UUID | None
    _after_commit: list[AfterCommit] = field(default_factory=list)
    _messages: list[dict[str, object]] = field(default_factory=list)

    def after_commit(self, callback: AfterCommit) -> None:
        self._after_commit.append(callback)

    def publish(self, message: dict[str, object]) -> None:
        """Queue a live-event message; it goes out only if (and after) the commit succeeds."""
        self._messages.append(message)


class Database:
    """The application role's engine and its session factory."""

    def __init__(self, engine: AsyncEngine, publisher: Publisher | None = None) -> None:
        self.engine = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        self.publisher = publisher

    @asynccontextmanager
    async def unit_of_work(self, tenant_id: uuid.UUID | None) -> AsyncIterator[UnitOfWork]:
        """Open a transaction with `app.tenant_id` set locally (None: no tenant, no rows)."""
        async with self.sessionmaker() as session:
            async with session.begin():
                if tenant_id is not None:
                    await session.execute(SET_TENANT, {"tenant_id": str(tenant_id)})
                uow = UnitOfWork(session=session, tenant_id=tenant_id)
                yield uow
        if uow._messages and self.publisher is not None:
            await self.publisher(uow._messages)
        for callback in uow._after_commit:
            await callback()

    async def prewarm(self, connections: int) -> int:
        """Open `connections` pooled connections at once and return them to the pool, so a
        busy process does not pay for connecting (a new PostgreSQL backend costs far more
        than a query). The number actually opened; a database that is down is reported by
        /readyz, not here."""
        opened: list[Any] = []
        try:
            opened = list(await asyncio.gather(
                *(self.engine.connect() for _ in range(connections))))
        except (OSError, exc.SQLAlchemyError):
            pass
        finally:
            for conn in opened:
                await conn.close()
        return len(opened)

    async def dispose(self) -> None:
        await self.engine.dispose()
