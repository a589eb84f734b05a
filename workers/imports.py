"""Import and export jobs.

A job may run more than once (a killed worker's job is retried): an import resumes after its
last committed batch, an export rewrites its file. Their jobs come from the outbox
(saas/outbox.py); `workers.outbox.requeue_stale` re-enqueues one that Redis lost.
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
