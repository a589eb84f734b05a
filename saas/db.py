"""Engines and the unit of work: one transaction, the tenant set inside it, hooks after commit."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import DateTime, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

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


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    """An asyncpg engine; `pool_pre_ping` so a restarted PostgreSQL does not fail requests."""
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        json_deserializer=_json_loads,
        # Statement cache off would cost a round trip per query; keep asyncpg's default.
    )


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

    async def dispose(self) -> None:
        await self.engine.dispose()
