"""Queries and mutations of deals: board, lists, history, moves, activities."""

from __future__ import annotations

from typing import Any

import strawberry

from saas.deals import activities, board, custom_fields, events, moves, search
from saas.deals import service as deals
from saas.errors import LimitExceeded, ValidationFailed
from schema.context import Info
from schema.deals.inputs import (
    CompleteActivityInput,
    CreateActivityInput,
    CreateDealInput,
    DealFilterInput,
    DealOrder,
    DefineCustomFieldInput,
    MoveDealInput,
    TransferDealInput,
    UpdateDealInput,
)
from schema.deals.types import (
    Activity,
    ActivityPayload,
    Board,
    BoardColumn,
    CustomFieldDefinition,
    CustomFieldPayload,
    Deal,
    DealConnection,
    DealEdge,
    DealPayload,
    MoveDealPayload,
    StageEvent,
    StageEventKind,
    StageEventPage,
)
from schema.mutations import payload
from schema.nodes import PageInfo, decode_id, gid
from schema.pipelines.types import Stage
from schema.tenants.types import User
from tenants.principal import Role
from tenants.scopes import Scope


def _card(row: dict[str, object], stage: Stage, people: dict[tuple[str, object], Any]) -> Deal:
    """A board card from its row (a fresh dict of board.load's, updated in place); owners and
    contacts repeat across cards, so each person becomes one object shared by their cards."""
    from schema.contacts.types import Contact

    owner = None
    if row["owner_id"] is not None:
        owner = people.get(("u", row["owner_id"]))
        if owner is None:
            team_id = row["owner_team_id"]
            owner = people[("u", row["owner_id"])] = User(
                id=str(row["owner_id"]), email=row["owner_email"],  # type: ignore[arg-type]
                name=row["owner_name"], role=Role(row["owner_role"]),  # type: ignore[arg-type]
                team_id=gid("Team", team_id),  # type: ignore[call-overload]
                is_active=row["owner_is_active"])  # type: ignore[arg-type]
    contact = None
    if row["contact_id"] is not None:
        contact = people.get(("c", row["contact_id"]))
        if contact is None:
            contact = people[("c", row["contact_id"])] = Contact(
                id=str(row["contact_id"]), name=row["contact_name"],  # type: ignore[arg-type]
                email=row["contact_email"], phone=row["contact_phone"],  # type: ignore[arg-type]
                company_id=row["contact_company_id"],  # type: ignore[arg-type]
                unsubscribed=row["contact_unsubscribed_at"] is not None)
    row["pipeline_id"] = stage.pipeline_id
    return Deal.from_model(row, prefetched={"stage": stage, "owner": owner, "contact": contact})


def event_cursor(after: str | None) -> int:
    """A stageEvents cursor -> the seq it names (0: from the start)."""
    if after is None or after == "":
        return 0
    # ASCII digits only ("²".isdigit() is true) and within PostgreSQL's bigint.
    if not (after.isascii() and after.isdigit()) or len(after) > 18:
        raise ValidationFailed("a cursor is the seq of an event", field="after")
    return int(after)


@strawberry.type
class DealsQuery:
    @strawberry.field(description="A pipeline as columns of cards, in one SQL round trip.")
    async def board(self, info: Info, pipeline_id: strawberry.ID,
                    deals_per_stage: int = 25) -> Board:
        info.context.require(Scope.DEALS_READ)
        pid = decode_id(pipeline_id, "Pipeline", field="pipelineId")
        async with info.context.uow() as uow:
            loaded = await board.load(uow=uow, pipeline_id=pid, per_stage=deals_per_stage)
        columns = []
        people: dict[tuple[str, object], Any] = {}
        for column in loaded.columns:
            stage = Stage.from_row(column.stage)
            columns.append(BoardColumn(stage=stage, deal_count=column.deal_count,
                                       deals=[_card(c, stage, people) for c in column.cards]))
        return Board(pipeline_id=pipeline_id, pipeline_name=loaded.pipeline_name,
                     columns=columns)

    @strawberry.field(description="Deals, filtered and ordered, with cursor pagination.")
    async def deals(self, info: Info, first: int = 50, after: str | None = None,
                    filter: DealFilterInput | None = None,
                    order_by: DealOrder = DealOrder.UPDATED_AT_DESC) -> DealConnection:
        info.context.require(Scope.DEALS_READ)
        f = filter.to_filter() if filter else search.DealFilter()
        context = info.context
        async with context.uow() as uow:
            page = await search.page(uow=uow, filter=f, order=order_by.value, first=first,
                                     after=after)

        async def count() -> int:
            async with context.uow() as uow:
                return await search.total(uow=uow, filter=f)

        edges = [DealEdge(cursor=c, node=Deal.from_model(d))
                 for d, c in zip(page.deals, page.cursors, strict=True)]
        return DealConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=page.has_next,
                               end_cursor=page.cursors[-1] if page.cursors else None),
            total_count_=count,
        )

    @strawberry.field(description="Stage events after a cursor, oldest first (tenant-wide or "
                                  "one pipeline's).")
    async def stage_events(self, info: Info, after: str | None = None, first: int = 100,
                           pipeline_id: strawberry.ID | None = None,
                           kinds: list[StageEventKind] | None = None) -> StageEventPage:
        info.context.require(Scope.DEALS_READ)
        if not 0 < first <= events.MAX_PAGE:
            raise LimitExceeded(f"first must be 1-{events.MAX_PAGE}", field="first")
        pid = decode_id(pipeline_id, "Pipeline", field="pipelineId") if pipeline_id else None
        async with info.context.uow() as uow:
            rows = await events.after(uow, after_seq=event_cursor(after), limit=first + 1,
                                      pipeline_id=pid,
                                      kinds=[k.value for k in kinds] if kinds else None)
        shown = rows[:first]
        return StageEventPage(events=[StageEvent.from_model(e) for e in shown],
                              end_cursor=str(shown[-1].seq) if shown else after,
                              has_more=len(rows) > first)

    @strawberry.field
    async def custom_fields(self, info: Info) -> list[CustomFieldDefinition]:
        info.context.require(Scope.DEALS_READ)
        async with info.context.uow() as uow:
            defs = await custom_fields.definitions(uow)
        return [CustomFieldDefinition.from_model(d) for d in defs.values()]


@strawberry.type
class DealsMutation:
    @strawberry.mutation
    async def create_deal(self, info: Info, input: CreateDealInput) -> DealPayload:
        principal = info.context.require_principal()

        async def act() -> DealPayload:
            principal.require(Scope.DEALS_WRITE)
            pipeline_id = decode_id(input.pipeline_id, "Pipeline", field="pipelineId")
            stage_id = decode_id(input.stage_id, "Stage", field="stageId") \
                if input.stage_id else None
            fields = input.fields()
            async with info.context.uow() as uow:
                deal = await deals.create(uow=uow, principal=principal, pipeline_id=pipeline_id,
                                          stage_id=stage_id, fields=fields)
            return DealPayload(deal=Deal.from_model(deal))

        return await payload(DealPayload, act)

    @strawberry.mutation(description="Change a deal's fields (not its stage: use moveDeal).")
    async def update_deal(self, info: Info, input: UpdateDealInput) -> DealPayload:
        principal = info.context.require_principal()

        async def act() -> DealPayload:
            principal.require(Scope.DEALS_WRITE)
            deal_id = decode_id(input.deal_id, "Deal", field="dealId")
            async with info.context.uow() as uow:
                deal = await deals.update(uow=uow, principal=principal, deal_id=deal_id,
                                          expected_version=input.expected_version,
                                          fields=input.fields())
            return DealPayload(deal=Deal.from_model(deal))

        return await payload(DealPayload, act)

    @strawberry.mutation(description="Move a deal to another stage of its pipeline: forward, "
                                     "back, to lost (needs lostReason) or reopen.")
    async def move_deal(self, info: Info, input: MoveDealInput) -> MoveDealPayload:
        principal = info.context.require_principal()

        async def act() -> MoveDealPayload:
            principal.require(Scope.DEALS_WRITE)
            deal_id = decode_id(input.deal_id, "Deal", field="dealId")
            stage_id = decode_id(input.to_stage_id, "Stage", field="toStageId")
            async with info.context.uow() as uow:
                deal, event, stage = await moves.move(
                    uow=uow, principal=principal, deal_id=deal_id, to_stage_id=stage_id,
                    expected_version=input.expected_version, lost_reason=input.lost_reason)
            # The move loaded its stage: the payload's deal.stage needs no other transaction.
            return MoveDealPayload(deal=Deal.from_model(deal, {"stage": Stage.from_row(stage)}),
                                   event=StageEvent.from_model(event))

        return await payload(MoveDealPayload, act)

    @strawberry.mutation(description="Move a deal to another segment's pipeline, choosing or "
                                     "mapping the stage.")
    async def transfer_deal(self, info: Info, input: TransferDealInput) -> MoveDealPayload:
        principal = info.context.require_principal()

        async def act() -> MoveDealPayload:
            principal.require(Scope.DEALS_WRITE)
            deal_id = decode_id(input.deal_id, "Deal", field="dealId")
            pipeline_id = decode_id(input.to_pipeline_id, "Pipeline", field="toPipelineId")
            to_stage = decode_id(input.to_stage_id, "Stage", field="toStageId") \
                if input.to_stage_id else None
            mapping = {decode_id(m.from_stage_id, "Stage", field="stageMapping"):
                       decode_id(m.to_stage_id, "Stage", field="stageMapping")
                       for m in input.stage_mapping or []}
            async with info.context.uow() as uow:
                deal, event = await moves.transfer(
                    uow=uow, principal=principal, deal_id=deal_id, to_pipeline_id=pipeline_id,
                    expected_version=input.expected_version, to_stage_id=to_stage,
                    stage_map=mapping, lost_reason=input.lost_reason)
            return MoveDealPayload(deal=Deal.from_model(deal), event=StageEvent.from_model(event))

        return await payload(MoveDealPayload, act)

    @strawberry.mutation
    async def create_activity(self, info: Info, input: CreateActivityInput) -> ActivityPayload:
        principal = info.context.require_principal()

        async def act() -> ActivityPayload:
            principal.require(Scope.DEALS_WRITE)
            deal_id = decode_id(input.deal_id, "Deal", field="dealId")
            async with info.context.uow() as uow:
                activity = await activities.create(
                    uow=uow, principal=principal, deal_id=deal_id, kind=input.kind.value,
                    subject=input.subject, note=input.note, due_at=input.due_at,
                    done_at=input.done_at)
            return ActivityPayload(activity=Activity.from_model(activity))

        return await payload(ActivityPayload, act)

    @strawberry.mutation
    async def complete_activity(self, info: Info,
                                input: CompleteActivityInput) -> ActivityPayload:
        principal = info.context.require_principal()

        async def act() -> ActivityPayload:
            principal.require(Scope.DEALS_WRITE)
            activity_id = decode_id(input.activity_id, "Activity", field="activityId")
            async with info.context.uow() as uow:
                activity = await activities.complete(uow=uow, principal=principal,
                                                     activity_id=activity_id)
            return ActivityPayload(activity=Activity.from_model(activity))

        return await payload(ActivityPayload, act)

    @strawberry.mutation(description="Define a custom deal field (admins).")
    async def define_custom_field(self, info: Info,
                                  input: DefineCustomFieldInput) -> CustomFieldPayload:
        principal = info.context.require_principal()

        async def act() -> CustomFieldPayload:
            principal.require(Scope.PIPELINES_WRITE)
            async with info.context.uow() as uow:
                d = await custom_fields.define(uow=uow, principal=principal, key=input.key,
                                               label=input.label, type=input.type,
                                               choices=input.choices, required=input.required)
            return CustomFieldPayload(field=CustomFieldDefinition.from_model(d))

        return await payload(CustomFieldPayload, act)
