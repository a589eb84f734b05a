"""Campaign jobs: a cron fan-out every minute, one idempotent job per tenant and minute.

`campaigns_fanout` enqueues `campaigns_tenant` with `_job_id = campaigns:{tenant}:{minute}`,
so a second fan-out for the same minute (two workers, a retry) enqueues nothing new. The
tenant job may still run twice (a killed worker's job is retried by arq, or two minutes'
jobs overlap): the engine's unique send rows make that harmless. `ctx["clock"]` (tests) or
the wall clock gives "now"; an explicit `at` later than the clock wins, so a job scheduled
for a minute never acts before it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from arq import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError

from saas.campaigns import engine
from saas.campaigns.mailer import Mailer, SmtpMailer
from saas.db import Database
from saas.settings import Settings, get_settings

log = logging.getLogger("saas.workers.campaigns")
RECOVERABLE = (OperationalError, InterfaceError, RedisConnectionError, ConnectionError,
               TimeoutError)


def _now(ctx: dict[str, Any]) -> datetime:
    clock = ctx.get("clock")
    return clock() if clock is not None else datetime.now(UTC)


def _settings(ctx: dict[str, Any]) -> Settings:
    settings: Settings = ctx.get("settings") or get_settings()
    return settings


async def campaigns_fanout(ctx: dict[str, Any]) -> int:
    """Enqueue one send job per tenant for this minute."""
    db: Database = ctx["db"]
    minute = _now(ctx).replace(second=0, microsecond=0).isoformat()
    async with db.unit_of_work(None) as uow:
        tenant_ids: list[uuid.UUID] = list((await uow.session.execute(
            text("SELECT id FROM tenant_directory()"))).scalars())
    for tenant_id in tenant_ids:
        await ctx["redis"].enqueue_job("campaigns_tenant", tenant_id=str(tenant_id), at=minute,
                                       _job_id=f"campaigns:{tenant_id}:{minute}")
    return len(tenant_ids)


async def campaigns_tenant(ctx: dict[str, Any], *, tenant_id: str,
                           at: str | None = None) -> dict[str, int]:
    """Enroll and send for one tenant; database/Redis outages are retried with backoff."""
    db: Database = ctx["db"]
    settings = _settings(ctx)
    now = _now(ctx)
    if at is not None:
        now = max(now, datetime.fromisoformat(at))
    mailer: Mailer = ctx["mailer_factory"](settings) if "mailer_factory" in ctx \
        else SmtpMailer(settings)
    try:
        result = await engine.tick(db, settings, uuid.UUID(tenant_id), now, mailer)
    except RECOVERABLE as e:
        tries = int(ctx.get("job_try", 1))
        log.warning("campaigns for tenant %s: recoverable error (try %s): %s", tenant_id,
                    tries, e)
        raise Retry(defer=min(2 ** tries, 60)) from e
    finally:
        await mailer.close()
    return result.as_dict()
