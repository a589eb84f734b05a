"""Webhook endpoints: create, update, pause, resume, rotate the secret, delete (webhooks:write).

An endpoint starts following the tenant's event log at the moment it is created (its cursor
is the tenant's current seq); pausing stops deliveries and the cursor, resuming (also of an
endpoint the worker disabled) catches up from where it stopped, so nothing is skipped.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from saas.db import UnitOfWork
from saas.errors import Conflict, LimitExceeded, NotFound, ValidationFailed
from saas.settings import Settings
from saas.webhooks import catalog, signing
from saas.webhooks.ssrf import Guard
from tenants import audit
from tenants.principal import Principal
from tenants.scopes import Scope

MAX_DESCRIPTION = 500
MAX_PIPELINES = 50

_COLUMNS = (
    "id, url, description, event_types, pipeline_ids, status, disabled_reason, disabled_at, "
    "failing_since, cursor_seq, previous_secret_expires_at, created_at, updated_at")


@dataclass(frozen=True)
class Endpoint:
    id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    pipeline_ids: list[uuid.UUID]
    status: str
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    cursor_seq: int
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Endpoint:
        return cls(**{k: getattr(row, k) for k in cls.__dataclass_fields__})


def guard_for(settings: Settings) -> Guard:
    return Guard(settings.webhook_allowed_networks, require_https=settings.webhooks_need_https)


def _patterns(event_types: list[str]) -> list[str]:
    try:
        return catalog.check_patterns(event_types)
    except ValueError as e:
        raise ValidationFailed(str(e), field="eventTypes") from e


async def _pipelines(uow: UnitOfWork, pipeline_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    ids = sorted(set(pipeline_ids))
    if len(ids) > MAX_PIPELINES:
        raise ValidationFailed(f"at most {MAX_PIPELINES} pipelines", field="pipelineIds")
    if ids:
        found: int = (await uow.session.execute(text(
            "SELECT count(*) FROM pipelines WHERE id = ANY(:ids)"), {"ids": ids})).scalar_one()
        if found != len(ids):
            raise NotFound("pipeline not found", field="pipelineIds")
    return ids


def _description(description: str | None) -> str:
    value = (description or "").strip()
    if len(value) > MAX_DESCRIPTION:
        raise ValidationFailed(f"description is at most {MAX_DESCRIPTION} characters",
                               field="description")
    return value


async def get(*, uow: UnitOfWork, endpoint_id: uuid.UUID, for_update: bool = False) -> Endpoint:
    row = (await uow.session.execute(text(
        f"SELECT {_COLUMNS} FROM webhook_endpoints WHERE id = :id"
        + (" FOR UPDATE" if for_update else "")), {"id": endpoint_id})).one_or_none()
    if row is None:
        raise NotFound("webhook endpoint not found", field="id")
    return Endpoint.from_row(row)


async def list_all(*, uow: UnitOfWork) -> list[Endpoint]:
    rows = await uow.session.execute(text(
        f"SELECT {_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"))
    return [Endpoint.from_row(r) for r in rows]


async def create(*, uow: UnitOfWork, principal: Principal, settings: Settings, url: str,
                 event_types: list[str], pipeline_ids: list[uuid.UUID],
                 description: str | None, guard: Guard | None = None) -> tuple[Endpoint, str]:
    """A new endpoint and its signing secret (shown this once)."""
    principal.require(Scope.WEBHOOKS_WRITE)
    patterns = _patterns(event_types)
    text_description = _description(description)
    target = await (guard or guard_for(settings)).check(url)
    pipelines = await _pipelines(uow, pipeline_ids)
    count: int = (await uow.session.execute(text("SELECT count(*) FROM webhook_endpoints"))
             ).scalar_one()
    if count >= settings.webhook_max_endpoints:
        raise LimitExceeded(f"a tenant has at most {settings.webhook_max_endpoints} webhook "
                            "endpoints", field="url")
    secret = signing.new_secret()
    endpoint_id = uuid.uuid4()
    await uow.session.execute(text(
        "INSERT INTO webhook_endpoints (tenant_id, id, url, description, event_types, "
        "pipeline_ids, secret, cursor_seq, created_by) VALUES (:t, :id, :url, :d, :types, "
        ":pipelines, :secret, coalesce((SELECT event_seq FROM tenant_counters "
        "WHERE tenant_id = :t), 0), :by)"),
        {"t": uow.tenant_id, "id": endpoint_id, "url": target.url, "d": text_description,
         "types": patterns, "pipelines": pipelines, "secret": secret, "by": principal.user_id})
    await audit.record(uow, principal, "webhook.created", target=("WebhookEndpoint", endpoint_id),
                       details={"url": target.url, "event_types": patterns})
    return await get(uow=uow, endpoint_id=endpoint_id), secret


async def update(*, uow: UnitOfWork, principal: Principal, settings: Settings,
                 endpoint_id: uuid.UUID, url: str | None = None,
                 event_types: list[str] | None = None,
                 pipeline_ids: list[uuid.UUID] | None = None, description: str | None = None,
                 guard: Guard | None = None) -> Endpoint:
    """Change what is given; a new URL is checked like on creation."""
    principal.require(Scope.WEBHOOKS_WRITE)
    await get(uow=uow, endpoint_id=endpoint_id, for_update=True)
    changes: dict[str, Any] = {}
    if url is not None:
        changes["url"] = (await (guard or guard_for(settings)).check(url)).url
    if event_types is not None:
        changes["event_types"] = _patterns(event_types)
    if pipeline_ids is not None:
        changes["pipeline_ids"] = await _pipelines(uow, pipeline_ids)
    if description is not None:
        changes["description"] = _description(description)
    if changes:
        sets = ", ".join(f"{k} = :{k}" for k in changes)
        await uow.session.execute(text(
            f"UPDATE webhook_endpoints SET {sets}, updated_at = now() WHERE id = :id"),
            {**changes, "id": endpoint_id})
        await audit.record(uow, principal, "webhook.updated",
                           target=("WebhookEndpoint", endpoint_id),
                           details={"changed": sorted(changes)})
    return await get(uow=uow, endpoint_id=endpoint_id)


async def set_status(*, uow: UnitOfWork, principal: Principal, endpoint_id: uuid.UUID,
                     status: str) -> Endpoint:
    """Pause (`paused`) or resume (`active`, also after the worker disabled it)."""
    principal.require(Scope.WEBHOOKS_WRITE)
    endpoint = await get(uow=uow, endpoint_id=endpoint_id, for_update=True)
    if status not in ("active", "paused"):
        raise ValidationFailed("status is active or paused", field="status")
    if endpoint.status == status:
        raise Conflict(f"the endpoint is already {status}", field="id")
    await uow.session.execute(text(
        "UPDATE webhook_endpoints SET status = :s, updated_at = now(), disabled_reason = NULL, "
        "disabled_at = NULL, failing_since = NULL WHERE id = :id"),
        {"s": status, "id": endpoint_id})
    if status == "active":
        # What waited for a retry is due now: the endpoint was fixed.
        await uow.session.execute(text(
            "UPDATE webhook_deliveries SET next_attempt_at = now() "
            "WHERE endpoint_id = :id AND status = 'pending'"), {"id": endpoint_id})
    await audit.record(uow, principal, "webhook.resumed" if status == "active" else
                       "webhook.paused", target=("WebhookEndpoint", endpoint_id))
    return await get(uow=uow, endpoint_id=endpoint_id)


async def rotate_secret(*, uow: UnitOfWork, principal: Principal, settings: Settings,
                        endpoint_id: uuid.UUID, grace_seconds: int) -> tuple[Endpoint, str]:
    """A new secret; the current one keeps signing beside it for `grace_seconds`."""
    principal.require(Scope.WEBHOOKS_WRITE)
    await get(uow=uow, endpoint_id=endpoint_id, for_update=True)
    if not 0 <= grace_seconds <= settings.webhook_secret_max_grace_seconds:
        raise ValidationFailed(
            f"the grace period is 0-{settings.webhook_secret_max_grace_seconds} seconds",
            field="gracePeriodSeconds")
    secret = signing.new_secret()
    await uow.session.execute(text(
        "UPDATE webhook_endpoints SET previous_secret = CASE WHEN :g > 0 THEN secret END, "
        "previous_secret_expires_at = CASE WHEN :g > 0 THEN now() + :grace END, "
        "secret = :secret, updated_at = now() WHERE id = :id"),
        {"g": grace_seconds, "grace": timedelta(seconds=grace_seconds), "secret": secret,
         "id": endpoint_id})
    await audit.record(uow, principal, "webhook.secret_rotated",
                       target=("WebhookEndpoint", endpoint_id),
                       details={"grace_seconds": grace_seconds})
    return await get(uow=uow, endpoint_id=endpoint_id), secret


async def delete(*, uow: UnitOfWork, principal: Principal, endpoint_id: uuid.UUID) -> None:
    """Remove the endpoint with its deliveries and their log."""
    principal.require(Scope.WEBHOOKS_WRITE)
    endpoint = await get(uow=uow, endpoint_id=endpoint_id, for_update=True)
    await uow.session.execute(text("DELETE FROM webhook_endpoints WHERE id = :id"),
                              {"id": endpoint_id})
    await audit.record(uow, principal, "webhook.deleted", target=("WebhookEndpoint", endpoint_id),
                       details={"url": endpoint.url})
