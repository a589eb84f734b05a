"""The events a live subscription delivers: one type per stage-event kind, plus a resync."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from saas.live.delivered import Card, Key
from saas.live.stream import Delivered, Resync
from schema.deals.types import Temperature
from schema.nodes import gid


@strawberry.type
class Owner:
    id: strawberry.ID
    name: str | None


@strawberry.type(description="The deal's card as it is now (not as of the event).")
class DealCard:
    id: strawberry.ID
    title: str
    amount: Decimal
    currency: str
    temperature: Temperature
    version: int
    stage_id: strawberry.ID
    pipeline_id: strawberry.ID
    owner: Owner | None

    @classmethod
    def from_card(cls, c: Card) -> DealCard:
        owner = (Owner(id=gid("User", c.owner_id), name=c.owner_name)
                 if c.owner_id else None)
        return cls(id=gid("Deal", c.id), title=c.title,
                   amount=c.amount, currency=c.currency, temperature=Temperature(c.temperature),
                   version=c.version, stage_id=gid("Stage", c.stage_id),
                   pipeline_id=gid("Pipeline", c.pipeline_id),
                   owner=owner)


@strawberry.type(description="Who caused an event: a user, or a partner app's API key.")
class Actor:
    user_id: strawberry.ID | None
    api_key_id: strawberry.ID | None


@strawberry.interface(description="A stage event of one deal, in the tenant's log order.")
class DealEvent:
    cursor: str = strawberry.field(description="Resume after this (the event's seq).")
    seq: int
    occurred_at: datetime
    deal_id: strawberry.ID
    pipeline_id: strawberry.ID
    from_stage_id: strawberry.ID | None
    to_stage_id: strawberry.ID | None
    amount: Decimal = strawberry.field(description="The deal's amount as of the event.")
    currency: str
    actor: Actor
    deal: DealCard | None = strawberry.field(description="Null if the deal was deleted.")
    # Not in the schema: the event's identity (tenant, seq, card) for shared renderings.
    render_key: strawberry.Private[Key | None] = None


@strawberry.type
class DealCreated(DealEvent):
    pass


@strawberry.type
class DealMoved(DealEvent):
    pass


@strawberry.type
class DealUpdated(DealEvent):
    data: JSON = strawberry.field(description="What changed, as recorded in the log.")


@strawberry.type
class DealLost(DealEvent):
    lost_reason: str | None


@strawberry.type
class DealReopened(DealEvent):
    pass


@strawberry.type(description="The deal moved to another pipeline (fromPipelineId -> pipelineId).")
class DealTransferred(DealEvent):
    from_pipeline_id: strawberry.ID | None


@strawberry.type(description="The deal was archived (permanent: false; it may come back "
                             "with DealRestored) or deleted for good (permanent: true): take "
                             "its card off the board.")
class DealDeleted(DealEvent):
    permanent: bool


@strawberry.type(description="An archived deal is back on the board, in toStageId.")
class DealRestored(DealEvent):
    pass


@strawberry.type(description="The stream ended because the server could not keep delivering "
                             "to this client; reload the board, or resubscribe with "
                             "after: lastCursor.")
class ResyncRequired:
    reason: str
    last_cursor: str | None


BoardEvent = Annotated[
    DealCreated | DealMoved | DealUpdated | DealLost | DealReopened | DealTransferred
    | DealDeleted | DealRestored | ResyncRequired,
    strawberry.union("BoardEvent"),
]

_KIND_TYPES: dict[str, type[DealEvent]] = {
    "created": DealCreated, "moved": DealMoved, "updated": DealUpdated, "lost": DealLost,
    "reopened": DealReopened, "transferred": DealTransferred, "deleted": DealDeleted,
    "restored": DealRestored,
}


def to_graphql(item: Delivered | Resync) -> object:
    """The GraphQL object of a stream item; built once per shared Delivered object.

    Every field of these types is plain data (no resolver, nothing from the subscriber's
    context), so the object and its renderings may be shared by all subscribers who
    received the same Delivered; tests/live check that stays true.
    """
    if isinstance(item, Resync):
        return ResyncRequired(reason=item.reason,
                              last_cursor=str(item.last_seq) if item.last_seq else None)
    if item.derived is None:
        item.derived = _event(item)
    return item.derived


def _event(item: Delivered) -> DealEvent:
    e = item.event
    cls = _KIND_TYPES[e.kind]
    fields: dict[str, object] = dict(
        cursor=str(e.seq), seq=e.seq, occurred_at=e.occurred_at,
        deal_id=gid("Deal", e.deal_id), pipeline_id=gid("Pipeline", e.pipeline_id),
        from_stage_id=gid("Stage", e.from_stage_id), to_stage_id=gid("Stage", e.to_stage_id),
        amount=e.amount, currency=e.currency,
        actor=Actor(user_id=gid("User", e.actor_user_id),
                    api_key_id=gid("ApiKey", e.actor_api_key_id)),
        deal=DealCard.from_card(item.card) if item.card else None,
        render_key=item.render_key,
    )
    if cls is DealUpdated:
        fields["data"] = e.data
    elif cls is DealLost:
        fields["lost_reason"] = e.lost_reason
    elif cls is DealTransferred:
        fields["from_pipeline_id"] = gid("Pipeline", e.from_pipeline_id)
    elif cls is DealDeleted:
        fields["permanent"] = bool((e.data or {}).get("permanent"))
    return cls(**fields)  # type: ignore[arg-type]


LIVE_TYPES: tuple[type, ...] = (DealCreated, DealMoved, DealUpdated, DealLost, DealReopened,
                                DealTransferred, DealDeleted, DealRestored, DealCard, Owner,
                                Actor)
"""The types whose renderings are shared between subscribers (see schema.live.transport)."""
