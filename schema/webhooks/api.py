"""Queries and mutations of webhook endpoints and deliveries (all need webhooks:write)."""

from __future__ import annotations

import uuid

import strawberry

from saas.errors import ValidationFailed
from saas.webhooks import deliveries, endpoints
from schema.context import Info
from schema.mutations import payload
from schema.nodes import decode_id
from schema.webhooks.types import (
    DeleteWebhookEndpointPayload,
    RedeliverWebhooksPayload,
    WebhookDelivery,
    WebhookDeliveryPage,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEndpointPayload,
)
from tenants.scopes import Scope


@strawberry.input
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="https only in production; public addresses only.")
    event_types: list[str] = strawberry.field(
        description="Event types (deal.moved), families (deal.*) or * for all.")
    pipeline_ids: list[strawberry.ID] | None = None
    description: str | None = None


@strawberry.input
class UpdateWebhookEndpointInput:
    id: strawberry.ID
    url: str | None = None
    event_types: list[str] | None = None
    pipeline_ids: list[strawberry.ID] | None = None
    description: str | None = None


@strawberry.input
class WebhookEndpointRefInput:
    id: strawberry.ID


@strawberry.input
class RotateWebhookSecretInput:
    id: strawberry.ID
    grace_period_seconds: int = strawberry.field(
        default=86400, description="How long the current secret keeps signing beside the new.")


@strawberry.input
class RedeliverWebhookInput:
    delivery_id: strawberry.ID


@strawberry.input
class RedeliverWebhooksInput:
    endpoint_id: strawberry.ID
    from_seq: int
    to_seq: int


def _endpoint_id(value: strawberry.ID, field: str = "id") -> uuid.UUID:
    return decode_id(value, "WebhookEndpoint", field=field)


def _pipelines(values: list[strawberry.ID] | None) -> list[uuid.UUID] | None:
    if values is None:
        return None
    return [decode_id(v, "Pipeline", field="pipelineIds") for v in values]


def _cursor(before: str | None) -> int | None:
    if before is None or before == "":
        return None
    if not before.isdigit():
        raise ValidationFailed("a cursor is the seq of a delivery", field="before")
    return int(before)


@strawberry.type
class WebhooksQuery:
    @strawberry.field(description="The tenant's webhook endpoints (webhooks:write).")
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        info.context.require(Scope.WEBHOOKS_WRITE)
        async with info.context.uow() as uow:
            return [WebhookEndpoint.from_model(e) for e in await endpoints.list_all(uow=uow)]

    @strawberry.field(description="An endpoint's deliveries, newest event first, with the "
                                  "log of their attempts (webhooks:write).")
    async def webhook_deliveries(self, info: Info, endpoint_id: strawberry.ID, first: int = 50,
                                 before: str | None = None,
                                 status: WebhookDeliveryStatus | None = None
                                 ) -> WebhookDeliveryPage:
        principal = info.context.require(Scope.WEBHOOKS_WRITE)
        eid = decode_id(endpoint_id, "WebhookEndpoint", field="endpointId")
        async with info.context.uow() as uow:
            rows, more = await deliveries.page(uow=uow, principal=principal, endpoint_id=eid,
                                               first=first, before_seq=_cursor(before),
                                               status=status.value if status else None)
        return WebhookDeliveryPage(deliveries=[WebhookDelivery.from_model(d) for d in rows],
                                   end_cursor=str(rows[-1].seq) if rows else None,
                                   has_more=more)


@strawberry.type
class WebhooksMutation:
    @strawberry.mutation(description="A new endpoint; its signing secret is returned once.")
    async def create_webhook_endpoint(self, info: Info, input: CreateWebhookEndpointInput
                                      ) -> WebhookEndpointPayload:
        principal = info.context.require_principal()

        async def act() -> WebhookEndpointPayload:
            principal.require(Scope.WEBHOOKS_WRITE)
            pipelines = _pipelines(input.pipeline_ids) or []
            async with info.context.uow() as uow:
                endpoint, secret = await endpoints.create(
                    uow=uow, principal=principal, settings=info.context.settings, url=input.url,
                    event_types=input.event_types, pipeline_ids=pipelines,
                    description=input.description)
            return WebhookEndpointPayload(endpoint=WebhookEndpoint.from_model(endpoint),
                                          secret=secret)

        return await payload(WebhookEndpointPayload, act)

    @strawberry.mutation(description="Change an endpoint's URL, event types, pipelines or "
                                     "description.")
    async def update_webhook_endpoint(self, info: Info, input: UpdateWebhookEndpointInput
                                      ) -> WebhookEndpointPayload:
        principal = info.context.require_principal()

        async def act() -> WebhookEndpointPayload:
            principal.require(Scope.WEBHOOKS_WRITE)
            endpoint_id = _endpoint_id(input.id)
            async with info.context.uow() as uow:
                endpoint = await endpoints.update(
                    uow=uow, principal=principal, settings=info.context.settings,
                    endpoint_id=endpoint_id, url=input.url,
                    event_types=input.event_types,
                    pipeline_ids=_pipelines(input.pipeline_ids),
                    description=input.description)
            return WebhookEndpointPayload(endpoint=WebhookEndpoint.from_model(endpoint))

        return await payload(WebhookEndpointPayload, act)

    @strawberry.mutation(description="Stop deliveries; events keep accumulating in the log.")
    async def pause_webhook_endpoint(self, info: Info, input: WebhookEndpointRefInput
                                     ) -> WebhookEndpointPayload:
        return await _set_status(info, input.id, "paused")

    @strawberry.mutation(description="Deliver again, catching up from where it stopped (also "
                                     "an endpoint the worker disabled).")
    async def resume_webhook_endpoint(self, info: Info, input: WebhookEndpointRefInput
                                      ) -> WebhookEndpointPayload:
        return await _set_status(info, input.id, "active")

    @strawberry.mutation(description="A new signing secret, returned once; the current one "
                                     "keeps signing for the grace period.")
    async def rotate_webhook_secret(self, info: Info, input: RotateWebhookSecretInput
                                    ) -> WebhookEndpointPayload:
        principal = info.context.require_principal()

        async def act() -> WebhookEndpointPayload:
            principal.require(Scope.WEBHOOKS_WRITE)
            endpoint_id = _endpoint_id(input.id)
            async with info.context.uow() as uow:
                endpoint, secret = await endpoints.rotate_secret(
                    uow=uow, principal=principal, settings=info.context.settings,
                    endpoint_id=endpoint_id,
                    grace_seconds=input.grace_period_seconds)
            return WebhookEndpointPayload(endpoint=WebhookEndpoint.from_model(endpoint),
                                          secret=secret)

        return await payload(WebhookEndpointPayload, act)

    @strawberry.mutation(description="Remove an endpoint with its delivery log.")
    async def delete_webhook_endpoint(self, info: Info, input: WebhookEndpointRefInput
                                      ) -> DeleteWebhookEndpointPayload:
        principal = info.context.require_principal()

        async def act() -> DeleteWebhookEndpointPayload:
            principal.require(Scope.WEBHOOKS_WRITE)
            endpoint_id = _endpoint_id(input.id)
            async with info.context.uow() as uow:
                await endpoints.delete(uow=uow, principal=principal,
                                       endpoint_id=endpoint_id)
            return DeleteWebhookEndpointPayload(deleted_id=input.id)

        return await payload(DeleteWebhookEndpointPayload, act)

    @strawberry.mutation(description="Send one delivery again, with the same webhook-id.")
    async def redeliver_webhook(self, info: Info, input: RedeliverWebhookInput
                                ) -> RedeliverWebhooksPayload:
        principal = info.context.require_principal()

        async def act() -> RedeliverWebhooksPayload:
            principal.require(Scope.WEBHOOKS_WRITE)
            delivery_id = decode_id(input.delivery_id, "WebhookDelivery", field="deliveryId")
            async with info.context.uow() as uow:
                count = await deliveries.redeliver(uow=uow, principal=principal,
                                                   delivery_id=delivery_id)
            return RedeliverWebhooksPayload(count=count)

        return await payload(RedeliverWebhooksPayload, act)

    @strawberry.mutation(description="Send again an endpoint's deliveries of events "
                                     "fromSeq..toSeq.")
    async def redeliver_webhooks(self, info: Info, input: RedeliverWebhooksInput
                                 ) -> RedeliverWebhooksPayload:
        principal = info.context.require_principal()

        async def act() -> RedeliverWebhooksPayload:
            principal.require(Scope.WEBHOOKS_WRITE)
            endpoint_id = _endpoint_id(input.endpoint_id, "endpointId")
            async with info.context.uow() as uow:
                count = await deliveries.redeliver_range(
                    uow=uow, principal=principal, endpoint_id=endpoint_id,
                    from_seq=input.from_seq, to_seq=input.to_seq)
            return RedeliverWebhooksPayload(count=count)

        return await payload(RedeliverWebhooksPayload, act)


async def _set_status(info: Info, id: strawberry.ID, status: str) -> WebhookEndpointPayload:
    principal = info.context.require_principal()

    async def act() -> WebhookEndpointPayload:
        principal.require(Scope.WEBHOOKS_WRITE)
        endpoint_id = _endpoint_id(id)
        async with info.context.uow() as uow:
            endpoint = await endpoints.set_status(uow=uow, principal=principal,
                                                  endpoint_id=endpoint_id,
                                                  status=status)
        return WebhookEndpointPayload(endpoint=WebhookEndpoint.from_model(endpoint))

    return await payload(WebhookEndpointPayload, act)

