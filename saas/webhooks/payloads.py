"""Webhook payloads (Standard Webhooks: `type`, `timestamp`, `data`) from the event logs.

Every payload's `data` has the tenant's `seq` of the event and global ids (the ids the
GraphQL API uses). Stage moves carry the previous and the new stage, `deal.updated` the
changed fields with their previous and new values, a transfer the previous pipeline.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text

from saas.entity_events import gid
from saas.webhooks.catalog import stage_event_type

# The changed-field names of `deal.updated` as the API spells them, and which hold ids.
_FIELD_NAMES = {"owner_id": ("ownerId", "User"), "contact_id": ("contactId", "Contact"),
                "company_id": ("companyId", "Company"),
                "expected_close_date": ("expectedCloseDate", None),
                "custom_fields": ("customFields", None),
                "probability_override": ("probabilityOverride", None)}

EVENTS = text(
    """
    SELECT * FROM (
      (SELECT e.seq, 'stage' AS source, e.kind, 'Deal' AS entity_type, e.deal_id AS entity_id,
              e.pipeline_id, e.from_pipeline_id, e.from_stage_id, e.to_stage_id,
              e.amount::text AS amount, e.currency, e.lost_reason, e.data, e.occurred_at,
              e.actor_user_id, e.actor_api_key_id,
              fs.kind AS from_kind, fs.name AS from_name, ts.kind AS to_kind, ts.name AS to_name,
              d.title, d.owner_id, d.contact_id, d.company_id, d.expected_close_date,
              d.labels, d.temperature, d.version, d.custom_fields
       FROM stage_events e
       LEFT JOIN stages fs ON fs.tenant_id = e.tenant_id AND fs.id = e.from_stage_id
       LEFT JOIN stages ts ON ts.tenant_id = e.tenant_id AND ts.id = e.to_stage_id
       LEFT JOIN deals d ON d.tenant_id = e.tenant_id AND d.id = e.deal_id
       WHERE e.seq > :after ORDER BY e.seq LIMIT :n)
      UNION ALL
      (SELECT x.seq, 'entity', x.kind, x.entity_type, x.entity_id, x.pipeline_id, NULL, NULL,
              NULL, NULL, NULL, NULL, x.data, x.occurred_at, x.actor_user_id,
              x.actor_api_key_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
              NULL, NULL, NULL
       FROM entity_events x WHERE x.seq > :after ORDER BY x.seq LIMIT :n)
    ) events ORDER BY seq LIMIT :n
    """)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _stage(stage_id: uuid.UUID | None, name: str | None, kind: str | None) -> Any:
    if stage_id is None:
        return None
    return {"id": gid("Stage", stage_id), "name": name, "kind": kind}


def _changes(raw: dict[str, Any]) -> dict[str, Any]:
    result = {}
    for name, change in raw.items():
        api_name, type_name = _FIELD_NAMES.get(name, (name, None))
        if type_name is not None:
            change = {"from": gid(type_name, change.get("from")),
                      "to": gid(type_name, change.get("to"))}
        result[api_name] = change
    return result


def event_type(row: Any) -> str:
    if row.source == "stage":
        return stage_event_type(row.kind, row.from_kind, row.to_kind)
    return str(row.kind)


def order_key(row: Any) -> str:
    return f"{row.entity_type}:{row.entity_id}"


def build(row: Any, tenant_id: uuid.UUID) -> dict[str, Any]:
    """The payload of one event row of `EVENTS`."""
    data: dict[str, Any] = {
        "seq": row.seq,
        "tenantId": gid("Tenant", tenant_id),
        "occurredAt": _iso(row.occurred_at),
        "actor": {"userId": gid("User", row.actor_user_id),
                  "apiKeyId": gid("ApiKey", row.actor_api_key_id)},
    }
    if row.source == "stage":
        data["deal"] = {
            "id": gid("Deal", row.entity_id), "title": row.title, "amount": row.amount,
            "currency": row.currency, "pipelineId": gid("Pipeline", row.pipeline_id),
            "stageId": gid("Stage", row.to_stage_id), "ownerId": gid("User", row.owner_id),
            "contactId": gid("Contact", row.contact_id),
            "companyId": gid("Company", row.company_id),
            "expectedCloseDate": row.expected_close_date.isoformat()
            if row.expected_close_date else None,
            "labels": row.labels, "temperature": row.temperature, "version": row.version,
            "customFields": row.custom_fields,
        }
        data["stage"] = _stage(row.to_stage_id, row.to_name, row.to_kind)
        if row.kind != "created":
            data["previousStage"] = _stage(row.from_stage_id, row.from_name, row.from_kind)
        if row.from_pipeline_id is not None:
            data["previousPipelineId"] = gid("Pipeline", row.from_pipeline_id)
        if row.lost_reason:
            data["lostReason"] = row.lost_reason
        if row.kind == "updated":
            data["changes"] = _changes((row.data or {}).get("changes", {}))
        elif row.data:
            data["details"] = row.data
    else:
        data.update(row.data or {})
    return {"type": event_type(row), "timestamp": _iso(row.occurred_at), "data": data}
