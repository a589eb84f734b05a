"""`subscription { boardEvents, dealEvents }` over graphql-transport-ws."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator

import strawberry
from graphql import GraphQLError

from saas.errors import DomainError, NotFound, ValidationFailed
from saas.live import stream as live
from saas.live.hub import Hub
from schema.context import Info
from schema.deals.types import StageEventKind
from schema.live.transport import direct_writer
from schema.live.types import BoardEvent, to_graphql
from schema.nodes import decode_id
from tenants.scopes import Scope

log = logging.getLogger("schema.live")


async def errors_mapped(items: AsyncIterator[object]) -> AsyncIterator[object]:
    """Domain errors with their `extensions.code`, anything else as 'internal error'.

    (The DomainErrors extension maps errors of queries and mutations; a subscription's
    errors are raised from its generator, so they are mapped here.)
    """
    try:
        async for item in items:
            yield item
    except DomainError as e:
        extensions = {"code": e.code, **({"field": e.field} if e.field else {})}
        raise GraphQLError(e.message, extensions=extensions) from e
    except Exception as e:
        log.error("unexpected error in a subscription", exc_info=e)
        raise GraphQLError("internal error", extensions={"code": "INTERNAL"}) from e


def _cursor(after: str | None) -> int | None:
    if after is None or after == "":
        return None
    # ASCII digits only ("²".isdigit() is true) and within PostgreSQL's bigint.
    if not (after.isascii() and after.isdigit()) or len(after) > 18:
        raise ValidationFailed("a cursor is the seq of an event", field="after")
    return int(after)


def _pipeline(value: strawberry.ID) -> uuid.UUID:
    try:
        return decode_id(value, "Pipeline", field="pipelineId")
    except NotFound as e:
        raise NotFound("pipeline not found", field="pipelineId") from e


def _hub(info: Info) -> Hub:
    hub: Hub | None = info.context.services.hub
    if hub is None:
        raise RuntimeError("the live hub is not running")
    return hub


async def _board(info: Info, pipeline_id: strawberry.ID,
                 after: str | None) -> AsyncIterator[object]:
    principal = info.context.require(Scope.DEALS_READ)
    pid = _pipeline(pipeline_id)
    cursor = _cursor(after)
    async for item in live.stream(_hub(info), principal, pid, cursor, direct=direct_writer()):
        yield to_graphql(item)


async def _deal_events(info: Info, after: str | None, pipeline_id: strawberry.ID | None,
                       kinds: list[StageEventKind] | None) -> AsyncIterator[object]:
    principal = info.context.require(Scope.DEALS_READ)
    pid = _pipeline(pipeline_id) if pipeline_id else None
    cursor = _cursor(after)
    kind_values = [k.value for k in kinds] if kinds else None
    async for item in live.stream(_hub(info), principal, pid, cursor, kind_values,
                                  direct=direct_writer()):
        yield to_graphql(item)


@strawberry.type
class LiveSubscription:
    @strawberry.subscription(description="A board's events: replay after `after` (a cursor), "
                                         "then live; ordered by seq, each exactly once.")
    async def board_events(self, info: Info, pipeline_id: strawberry.ID,
                           after: str | None = None) -> AsyncGenerator[BoardEvent, None]:
        async for item in errors_mapped(_board(info, pipeline_id, after)):
            yield item  # type: ignore[misc]

    @strawberry.subscription(description="The tenant's deal events (optionally one pipeline's "
                                         "or some kinds), for partner apps.")
    async def deal_events(self, info: Info, after: str | None = None,
                          pipeline_id: strawberry.ID | None = None,
                          kinds: list[StageEventKind] | None = None,
                          ) -> AsyncGenerator[BoardEvent, None]:
        async for item in errors_mapped(_deal_events(info, after, pipeline_id, kinds)):
            yield item  # type: ignore[misc]
