"""The delivery log as admins see it, and redelivery of one delivery or a range of events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from saas.db import UnitOfWork
from saas.errors import LimitExceeded, NotFound, ValidationFailed
from saas.webhooks import endpoints
from tenants import audit
from tenants.principal import Principal
from tenants.scopes import Scope

MAX_PAGE = 200
MAX_RANGE = 10_000
STATUSES = ("pending", "delivered", "failed")


@dataclass(frozen=True)
class Attempt:
    attempt: int
    attempted_at: datetime
    status_code: int | None
    latency_ms: int | None
    response_body: str | None
    error: str | None


@dataclass(frozen=True)
class Delivery:
    id: uuid.UUID
    endpoint_id: uuid.UUID
    seq: int
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]
    log: list[Attempt]


async def page(*, uow: UnitOfWork, principal: Principal, endpoint_id: uuid.UUID, first: int,
               before_seq: int | None, status: str | None) -> tuple[list[Delivery], bool]:
    """An endpoint's deliveries, newest event first, each with its attempts."""
    principal.require(Scope.WEBHOOKS_WRITE)
    await endpoints.get(uow=uow, endpoint_id=endpoint_id)
    if not 0 < first <= MAX_PAGE:
        raise LimitExceeded(f"first must be 1-{MAX_PAGE}", field="first")
    if status is not None and status not in STATUSES:
        raise ValidationFailed("status is pending, delivered or failed", field="status")
    rows = (await uow.session.execute(text(
        "SELECT id, endpoint_id, seq, event_type, status, attempts, "
        "CASE WHEN status = 'pending' THEN next_attempt_at END AS next_attempt_at, "
        "last_status_code, last_error, created_at, delivered_at, payload "
        "FROM webhook_deliveries WHERE endpoint_id = :e "
        "AND (CAST(:before AS bigint) IS NULL OR seq < :before) "
        "AND (CAST(:status AS text) IS NULL OR status = :status) "
        "ORDER BY seq DESC LIMIT :n"),
        {"e": endpoint_id, "before": before_seq, "status": status, "n": first + 1})).all()
    shown = rows[:first]
    attempts: dict[uuid.UUID, list[Attempt]] = {r.id: [] for r in shown}
    if shown:
        for a in await uow.session.execute(text(
                "SELECT delivery_id, attempt, attempted_at, status_code, latency_ms, "
                "response_body, error FROM webhook_attempts WHERE delivery_id = ANY(:ids) "
                "ORDER BY delivery_id, attempt"), {"ids": list(attempts)}):
            attempts[a.delivery_id].append(Attempt(a.attempt, a.attempted_at, a.status_code,
                                                   a.latency_ms, a.response_body, a.error))
    return [Delivery(r.id, r.endpoint_id, r.seq, r.event_type, r.status, r.attempts,
                     r.next_attempt_at, r.last_status_code, r.last_error, r.created_at,
                     r.delivered_at, r.payload, attempts[r.id]) for r in shown], \
        len(rows) > first


async def redeliver(*, uow: UnitOfWork, principal: Principal, delivery_id: uuid.UUID) -> int:
    """Send one delivery again (same webhook-id), whatever its status."""
    principal.require(Scope.WEBHOOKS_WRITE)
    row = (await uow.session.execute(text(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), "
        "claimed_until = NULL WHERE id = :d RETURNING endpoint_id"),
        {"d": delivery_id})).one_or_none()
    if row is None:
        raise NotFound("webhook delivery not found", field="deliveryId")
    await audit.record(uow, principal, "webhook.redelivered",
                       target=("WebhookEndpoint", row.endpoint_id),
                       details={"deliveries": 1})
    return 1


async def redeliver_range(*, uow: UnitOfWork, principal: Principal, endpoint_id: uuid.UUID,
                          from_seq: int, to_seq: int) -> int:
    """Send again every delivery of the endpoint for events from_seq..to_seq (inclusive)."""
    principal.require(Scope.WEBHOOKS_WRITE)
    await endpoints.get(uow=uow, endpoint_id=endpoint_id)
    if from_seq < 1 or to_seq < from_seq:
        raise ValidationFailed("the range is fromSeq <= toSeq, both at least 1",
                               field="fromSeq")
    if to_seq - from_seq >= MAX_RANGE:
        raise LimitExceeded(f"at most {MAX_RANGE} events per redelivery", field="toSeq")
    count = len((await uow.session.execute(text(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), "
        "claimed_until = NULL WHERE endpoint_id = :e AND seq BETWEEN :a AND :b RETURNING id"),
        {"e": endpoint_id, "a": from_seq, "b": to_seq})).all())
    await audit.record(uow, principal, "webhook.redelivered",
                       target=("WebhookEndpoint", endpoint_id),
                       details={"deliveries": count, "from_seq": from_seq, "to_seq": to_seq})
    return count
