"""From the event log to deliveries: each active endpoint's cursor, advanced transactionally.

One transaction reads a page of events after the lowest cursor of the tenant's active
endpoints, inserts a delivery for every (endpoint, event) the endpoint wants, and moves
those cursors past the page. The log is gap-free in commit order and the delivery is
unique per (endpoint, seq), so a crash at any point loses nothing and duplicates nothing:
the next run starts from the committed cursors. Paused and disabled endpoints keep their
cursor, so resuming them catches up from the log.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import text

from saas.db import Database
from saas.webhooks import catalog, payloads

PAGE = 500
MAX_PAGES = 20

_ENDPOINTS = text(
    "SELECT id, event_types, pipeline_ids, cursor_seq FROM webhook_endpoints "
    "WHERE status = 'active' ORDER BY id FOR UPDATE SKIP LOCKED")

_INSERT = text(
    "INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, seq, event_type, order_key, "
    "payload) SELECT :t, unnest(CAST(:ids AS uuid[])), unnest(CAST(:endpoints AS uuid[])), "
    "unnest(CAST(:seqs AS bigint[])), unnest(CAST(:types AS text[])), "
    "unnest(CAST(:keys AS text[])), unnest(CAST(:payloads AS text[]))::jsonb "
    "ON CONFLICT (tenant_id, endpoint_id, seq) DO NOTHING")


def _matches(endpoint: Any, row: Any, event_type: str) -> bool:
    if not catalog.wants(endpoint.event_types, event_type):
        return False
    if endpoint.pipeline_ids and row.pipeline_id is not None:
        return (row.pipeline_id in endpoint.pipeline_ids
                or (row.from_pipeline_id is not None
                    and row.from_pipeline_id in endpoint.pipeline_ids))
    return True


async def dispatch(db: Database, tenant_id: uuid.UUID) -> set[uuid.UUID]:
    """Turn new events into deliveries for every active endpoint; returns the endpoints
    that got new deliveries."""
    created: set[uuid.UUID] = set()
    for _ in range(MAX_PAGES):
        async with db.unit_of_work(tenant_id) as uow:
            endpoints = list(await uow.session.execute(_ENDPOINTS))
            if not endpoints:
                return created
            low = min(e.cursor_seq for e in endpoints)
            rows = list(await uow.session.execute(payloads.EVENTS, {"after": low, "n": PAGE}))
            if not rows:
                return created
            batch: dict[str, list[Any]] = {k: [] for k in
                                           ("ids", "endpoints", "seqs", "types", "keys",
                                            "payloads")}
            for row in rows:
                kind = payloads.event_type(row)
                body: str | None = None
                for endpoint in endpoints:
                    if row.seq <= endpoint.cursor_seq or not _matches(endpoint, row, kind):
                        continue
                    if body is None:
                        body = orjson.dumps(payloads.build(row, tenant_id)).decode()
                    batch["ids"].append(uuid.uuid4())
                    batch["endpoints"].append(endpoint.id)
                    batch["seqs"].append(row.seq)
                    batch["types"].append(kind)
                    batch["keys"].append(payloads.order_key(row))
                    batch["payloads"].append(body)
            if batch["ids"]:
                await uow.session.execute(_INSERT, {"t": tenant_id, **batch})
                created.update(batch["endpoints"])
            last = rows[-1].seq
            await uow.session.execute(text(
                "UPDATE webhook_endpoints SET cursor_seq = :last "
                "WHERE id = ANY(:ids) AND cursor_seq < :last"),
                {"last": last, "ids": [e.id for e in endpoints]})
        if len(rows) < PAGE:
            return created
    return created
