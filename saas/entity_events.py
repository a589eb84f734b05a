"""The entity-event log: changes other than stage moves, numbered with the stage log's seq.

Contacts, companies, finished forecasts and imports append here, in the transaction that
made the change. The number comes from the tenant's one counter (`saas.deals.events.next_seq`),
so stage events and entity events together form one gap-free sequence in commit order,
which is what a webhook endpoint's cursor follows (saas/webhooks/dispatch.py). `data` holds
the payload partners receive, as it was when the change committed.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import orjson
from sqlalchemy import text

from saas.db import UnitOfWork
from saas.deals.events import next_seq
from tenants.principal import Principal

KINDS = ("contact.created", "contact.updated", "contact.deleted", "company.created",
         "company.updated", "company.deleted", "forecast.completed", "import.completed",
         "webhook.disabled")

_INSERT = text(
    "INSERT INTO entity_events (tenant_id, seq, kind, entity_type, entity_id, pipeline_id, "
    "actor_user_id, actor_api_key_id, data) "
    "VALUES (:t, :seq, :kind, :type, :id, :pipeline, :user, :key, CAST(:data AS jsonb))")


def gid(type_name: str, id: uuid.UUID | str | None) -> str | None:
    """The API's opaque global id (base64 of `Type:uuid`, as strawberry's GlobalID)."""
    if id is None:
        return None
    return base64.b64encode(f"{type_name}:{id}".encode()).decode()


async def append(uow: UnitOfWork, *, kind: str, entity_type: str, entity_id: uuid.UUID,
                 data: dict[str, Any], principal: Principal | None = None,
                 pipeline_id: uuid.UUID | None = None) -> int:
    """Record a change in the caller's transaction; returns its seq."""
    if kind not in KINDS:
        raise ValueError(f"unknown entity event kind {kind!r}")
    seq = await next_seq(uow)
    await uow.session.execute(_INSERT, {
        "t": uow.tenant_id, "seq": seq, "kind": kind, "type": entity_type, "id": entity_id,
        "pipeline": pipeline_id,
        "user": principal.user_id if principal else None,
        "key": principal.api_key_id if principal else None,
        "data": orjson.dumps(data, default=str).decode()})
    return seq
