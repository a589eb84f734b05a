"""Hourly: delete expired Idempotency-Key responses, tenant by tenant (each under RLS)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from saas import idempotency
from saas.db import Database


async def purge_idempotency_keys(ctx: dict[str, Any]) -> int:
    db: Database = ctx["db"]
    async with db.unit_of_work(None) as uow:
        tenant_ids: list[uuid.UUID] = list((await uow.session.execute(
            text("SELECT id FROM tenant_directory()"))).scalars())
    purged = 0
    for tenant_id in tenant_ids:
        async with db.unit_of_work(tenant_id) as uow:
            purged += await idempotency.purge(uow)
    return purged
