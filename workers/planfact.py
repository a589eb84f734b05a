"""Weekly plan-fact snapshots: a cron fan-out enqueues one idempotent job per tenant.

The fan-out picks, per tenant, the last ISO week that has ended in the tenant's time zone
and enqueues `planfact_tenant` with `_job_id = planfact:{tenant}:{week}`, so a second
fan-out (a retry, a second worker) does not enqueue a duplicate while the job or its result
is kept. The per-tenant job upserts, so even a duplicate run leaves one snapshot.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import text

from saas.db import Database
from saas.planning import service as planning


async def planfact_fanout(ctx: dict[str, Any]) -> int:
    """Enqueue one snapshot job per tenant for its last completed week."""
    db: Database = ctx["db"]
    async with db.unit_of_work(None) as uow:
        rows = list(await uow.session.execute(text(
            "SELECT id, (now() AT TIME ZONE timezone)::date AS today FROM tenant_directory()")))
    for row in rows:
        week = planning.week_start(row.today) - timedelta(days=7)
        await ctx["redis"].enqueue_job(
            "planfact_tenant", str(row.id), week.isoformat(),
            _job_id=f"planfact:{row.id}:{week.isoformat()}")
    return len(rows)


async def planfact_tenant(ctx: dict[str, Any], tenant_id: str, week: str | None = None) -> int:
    """Compute and upsert one tenant's weekly plan-fact snapshot (default: last full week)."""
    db: Database = ctx["db"]
    async with db.unit_of_work(uuid.UUID(tenant_id)) as uow:
        start = (date.fromisoformat(week) if week
                 else planning.week_start(await planning.local_today(uow)) - timedelta(days=7))
        return await planning.snapshot(uow=uow, kind="week", start=start)
