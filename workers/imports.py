"""Import and export jobs, and the sweeper that re-enqueues them from durable state.

A job may run more than once (a killed worker's job is retried): an import resumes after its
last committed batch, an export rewrites its file. `imports_sweep` runs every minute and
enqueues (deterministic job ids) imports and exports still `queued` a minute after they were
requested: their enqueue after commit was lost (Redis down), or the queue lost them.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from arq import Retry
from sqlalchemy import text

from saas.db import Database
from saas.exports import service as exports
from saas.imports import loader
from saas.imports import service as imports
from saas.settings import Settings, get_settings
from workers.forecast import RECOVERABLE

log = logging.getLogger("saas.workers.imports")


async def run_import(ctx: dict[str, Any], *, tenant_id: str, import_id: str) -> str:
    db: Database = ctx["db"]
    settings: Settings = ctx.get("settings") or get_settings()
    try:
        return await loader.run(db, uuid.UUID(tenant_id), uuid.UUID(import_id),
                                batch_rows=settings.import_batch_rows)
    except RECOVERABLE as e:
        log.warning("import %s: recoverable error, retrying: %s", import_id, e)
        raise Retry(defer=min(2 ** int(ctx.get("job_try", 1)), 60)) from e
    except Exception as e:
        log.exception("import %s failed", import_id)
        async with db.unit_of_work(uuid.UUID(tenant_id)) as uow:
            await uow.session.execute(text(
                "UPDATE imports SET status = 'failed', error = :e, finished_at = now() "
                "WHERE id = :id AND status IN ('queued', 'running')"),
                {"id": uuid.UUID(import_id), "e": f"internal error ({type(e).__name__})"})
        return "failed"


async def run_export(ctx: dict[str, Any], *, tenant_id: str, export_id: str) -> str:
    db: Database = ctx["db"]
    try:
        return await exports.run(db, uuid.UUID(tenant_id), uuid.UUID(export_id))
    except RECOVERABLE as e:
        raise Retry(defer=min(2 ** int(ctx.get("job_try", 1)), 60)) from e


async def imports_sweep(ctx: dict[str, Any]) -> int:
    db: Database = ctx["db"]
    async with db.unit_of_work(None) as uow:
        tenant_ids: list[uuid.UUID] = list((await uow.session.execute(
            text("SELECT id FROM tenant_directory()"))).scalars())
    count = 0
    for tenant_id in tenant_ids:
        async with db.unit_of_work(tenant_id) as uow:
            stuck_imports: list[uuid.UUID] = list((await uow.session.execute(text(
                "SELECT id FROM imports WHERE status = 'queued' "
                "AND created_at < now() - interval '1 minute'"))).scalars())
            stuck_exports: list[uuid.UUID] = list((await uow.session.execute(text(
                "SELECT id FROM exports WHERE status = 'queued' "
                "AND created_at < now() - interval '1 minute'"))).scalars())
        for import_id in stuck_imports:
            await ctx["redis"].enqueue_job(imports.JOB, tenant_id=str(tenant_id),
                                           import_id=str(import_id),
                                           _job_id=imports.job_id(import_id))
        for export_id in stuck_exports:
            await ctx["redis"].enqueue_job(exports.JOB, tenant_id=str(tenant_id),
                                           export_id=str(export_id), _job_id=f"export:{export_id}")
        count += len(stuck_imports) + len(stuck_exports)
    return count
