"""Types of the webhooks API."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON

from saas.webhooks import deliveries
from saas.webhooks.endpoints import Endpoint
from saas.webhooks.signing import webhook_id
from schema.errors import UserError
from schema.nodes import gid


@strawberry.enum
class WebhookEndpointStatus(enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    DISABLED = "disabled"


@strawberry.enum
class WebhookDeliveryStatus(enum.Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@strawberry.type(description="Where the tenant's events are pushed, signed (Standard Webhooks).")
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    description: str
    event_types: list[str] = strawberry.field(
        description="deal.created, deal.moved, ..., a family such as contact.*, or *.")
    pipeline_ids: list[strawberry.ID] = strawberry.field(
        description="Only events of these pipelines (deal events, forecasts); empty: all.")
    status: WebhookEndpointStatus
    disabled_reason: str | None = strawberry.field(
        description="Why the delivery worker disabled it (410 Gone, failing for the whole "
                    "retry window); resumeWebhookEndpoint re-enables it.")
    disabled_at: datetime | None
    failing_since: datetime | None
    delivered_through_seq: int = strawberry.field(
        description="Events up to this seq have been turned into deliveries.")
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="After a rotation, the previous secret also signs until then.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, e: Endpoint) -> WebhookEndpoint:
        return cls(id=gid("WebhookEndpoint", e.id), url=e.url, description=e.description,
                   event_types=list(e.event_types),
                   pipeline_ids=[gid("Pipeline", p) for p in e.pipeline_ids],
                   status=WebhookEndpointStatus(e.status), disabled_reason=e.disabled_reason,
                   disabled_at=e.disabled_at, failing_since=e.failing_since,
                   delivered_through_seq=e.cursor_seq,
                   previous_secret_expires_at=e.previous_secret_expires_at,
                   created_at=e.created_at, updated_at=e.updated_at)


@strawberry.type
class WebhookAttempt:
    attempt: int
    attempted_at: datetime
    status_code: int | None
    latency_ms: int | None
    response_body: str | None = strawberry.field(description="The first 2 KiB.")
    error: str | None


@strawberry.type
class WebhookDelivery:
    id: strawberry.ID
    webhook_id: str = strawberry.field(description="The webhook-id header of every attempt.")
    seq: int
    event_type: str
    status: WebhookDeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: JSON
    log: list[WebhookAttempt]

    @classmethod
    def from_model(cls, d: deliveries.Delivery) -> WebhookDelivery:
        return cls(id=gid("WebhookDelivery", d.id), webhook_id=webhook_id(d.id), seq=d.seq,
                   event_type=d.event_type, status=WebhookDeliveryStatus(d.status),
                   attempts=d.attempts, next_attempt_at=d.next_attempt_at,
                   last_status_code=d.last_status_code, last_error=d.last_error,
                   created_at=d.created_at, delivered_at=d.delivered_at,
                   payload=cast(JSON, d.payload),
                   log=[WebhookAttempt(attempt=a.attempt, attempted_at=a.attempted_at,
                                       status_code=a.status_code, latency_ms=a.latency_ms,
                                       response_body=a.response_body, error=a.error)
                        for a in d.log])


@strawberry.type
class WebhookDeliveryPage:
    deliveries: list[WebhookDelivery]
    end_cursor: str | None = strawberry.field(description="Pass as `before` for older ones.")
    has_more: bool


@strawberry.type
class WebhookEndpointPayload:
    endpoint: WebhookEndpoint | None = None
    secret: str | None = strawberry.field(
        default=None, description="The signing secret (whsec_...): returned only by "
                                  "createWebhookEndpoint and rotateWebhookSecret.")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteWebhookEndpointPayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RedeliverWebhooksPayload:
    count: int = 0
    errors: list[UserError] = strawberry.field(default_factory=list)
