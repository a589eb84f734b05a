"""GraphQL types of deals, stage events, activities and the board."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from saas.contacts import models as contact_models
from saas.deals import activities as activity_service
from saas.deals import events as event_log
from saas.deals import models
from saas.pipelines import models as pipeline_models
from schema.contacts.types import Company, Contact
from schema.context import Info
from schema.errors import UserError
from schema.forecasting.outlook import WinProbabilitySource, deal_outlook
from schema.loaders import by_id
from schema.nodes import PageInfo, gid
from schema.pipelines.types import Pipeline, Stage
from schema.tenants.types import User
from tenants import models as tenant_models


@strawberry.enum
class Temperature(enum.Enum):
    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


@strawberry.enum
class StageEventKind(enum.Enum):
    CREATED = "created"
    MOVED = "moved"
    LOST = "lost"
    REOPENED = "reopened"
    UPDATED = "updated"
    TRANSFERRED = "transferred"
    DELETED = "deleted"
    RESTORED = "restored"


@strawberry.enum
class ActivityKind(enum.Enum):
    CALL = "call"
    MEETING = "meeting"
    EMAIL = "email"
    TASK = "task"




@strawberry.type
class Activity(relay.Node):
    id: relay.NodeID[str]
    deal_id: strawberry.ID
    kind: ActivityKind
    subject: str
    note: str | None
    due_at: datetime | None
    done_at: datetime | None
    created_at: datetime

    @classmethod
    def from_model(cls, m: models.Activity) -> Activity:
        return cls(id=str(m.id), deal_id=gid("Deal", m.deal_id),
                   kind=ActivityKind(m.kind), subject=m.subject, note=m.note, due_at=m.due_at,
                   done_at=m.done_at, created_at=m.created_at)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Activity | None]:
        rows = await by_id(info, models.Activity).load_many([uuid.UUID(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]


# Field names of the log (model attributes) as the API spells them; ids become global ids.
_API_FIELD = {"owner_id": "ownerId", "contact_id": "contactId", "company_id": "companyId",
              "expected_close_date": "expectedCloseDate", "custom_fields": "customFields",
              "probability_override": "probabilityOverride"}
_ID_TYPES = {"owner_id": "User", "contact_id": "Contact", "company_id": "Company"}


@strawberry.type(description="One field's change in an `updated` event: who and when are "
                             "the event's.")
class FieldChange:
    field: str = strawberry.field(description="The field as the API names it (ownerId...).")
    from_value: JSON | None = strawberry.field(name="from")
    to_value: JSON | None = strawberry.field(name="to")


def field_changes(data: dict[str, Any]) -> list[FieldChange]:
    """The typed field history of an event's data (`{field: {from, to}}`)."""
    out = []
    for name, change in (data.get("changes") or {}).items():
        values = [change.get("from"), change.get("to")]
        if name in _ID_TYPES:
            values = [gid(_ID_TYPES[name], uuid.UUID(v)) if v else None for v in values]
        out.append(FieldChange(field=_API_FIELD.get(name, name),
                               from_value=cast(JSON, values[0]), to_value=cast(JSON, values[1])))
    return out


@strawberry.type
class StageEvent:
    cursor: str = strawberry.field(description="The per-tenant sequence; resume after it.")
    seq: int
    kind: StageEventKind
    deal_id: strawberry.ID
    pipeline_id: strawberry.ID
    from_stage_id: strawberry.ID | None
    to_stage_id: strawberry.ID | None
    from_pipeline_id: strawberry.ID | None
    actor_user_id: strawberry.ID | None
    actor_api_key_id: strawberry.ID | None
    amount: Decimal
    currency: str
    lost_reason: str | None
    data: JSON
    occurred_at: datetime

    @strawberry.field(description="Field changes (updated events): previous and new values.")
    def changes(self) -> list[FieldChange]:
        return field_changes(cast(dict[str, Any], self.data) or {})

    @classmethod
    def from_model(cls, e: models.StageEvent) -> StageEvent:
        return cls(
            cursor=str(e.seq), seq=e.seq, kind=StageEventKind(e.kind),
            deal_id=gid("Deal", e.deal_id),
            pipeline_id=gid("Pipeline", e.pipeline_id),
            from_stage_id=gid("Stage", e.from_stage_id), to_stage_id=gid("Stage", e.to_stage_id),
            from_pipeline_id=gid("Pipeline", e.from_pipeline_id),
            actor_user_id=gid("User", e.actor_user_id),
            actor_api_key_id=gid("ApiKey", e.actor_api_key_id),
            amount=e.amount, currency=e.currency, lost_reason=e.lost_reason,
            data=cast(JSON, e.data),
            occurred_at=e.occurred_at,
        )


@strawberry.type
class Deal(relay.Node):
    id: relay.NodeID[str]
    title: str
    amount: Decimal
    currency: str
    temperature: Temperature
    labels: list[str]
    custom_fields: JSON
    expected_close_date: date | None
    probability_override: Decimal | None
    lost_reason: str | None
    version: int
    stage_entered_at: datetime
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = strawberry.field(
        description="Set while the deal is archived (hidden from boards, lists, analytics).")
    pipeline_id_: strawberry.Private[uuid.UUID]
    stage_id_: strawberry.Private[uuid.UUID]
    owner_id_: strawberry.Private[uuid.UUID | None]
    contact_id_: strawberry.Private[uuid.UUID | None]
    company_id_: strawberry.Private[uuid.UUID | None]
    prefetched: strawberry.Private[dict[str, Any]]

    # Card fields are plain (sync) resolvers: a board prefetches them, and an async resolver
    # would cost a task per card and field. Otherwise they return an awaitable, which
    # graphql-core awaits like an async resolver's result.
    @strawberry.field
    def stage(self, info: Info) -> Stage:
        if "stage" in self.prefetched:
            return self.prefetched["stage"]  # type: ignore[no-any-return]
        return self._stage(info)  # type: ignore[return-value]

    async def _stage(self, info: Info) -> Stage:
        return Stage.from_row(await by_id(info, pipeline_models.Stage).load(self.stage_id_))

    @strawberry.field
    async def pipeline(self, info: Info) -> Pipeline:
        return Pipeline.from_model(
            await by_id(info, pipeline_models.Pipeline).load(self.pipeline_id_))

    @strawberry.field
    def owner(self, info: Info) -> User | None:
        if "owner" in self.prefetched:
            return self.prefetched["owner"]  # type: ignore[no-any-return]
        if self.owner_id_ is None:
            return None
        return self._owner(info, self.owner_id_)  # type: ignore[return-value]

    async def _owner(self, info: Info, owner_id: uuid.UUID) -> User | None:
        row = await by_id(info, tenant_models.User).load(owner_id)
        return User.from_model(row) if row else None

    @strawberry.field
    def contact(self, info: Info) -> Contact | None:
        if "contact" in self.prefetched:
            return self.prefetched["contact"]  # type: ignore[no-any-return]
        if self.contact_id_ is None:
            return None
        return self._contact(info, self.contact_id_)  # type: ignore[return-value]

    async def _contact(self, info: Info, contact_id: uuid.UUID) -> Contact | None:
        row = await by_id(info, contact_models.Contact).load(contact_id)
        return Contact.from_model(row) if row else None

    @strawberry.field
    async def company(self, info: Info) -> Company | None:
        if self.company_id_ is None:
            return None
        row = await by_id(info, contact_models.Company).load(self.company_id_)
        return Company.from_model(row) if row else None

    @strawberry.field(description="The amount in the tenant's base currency at today's "
                                  "exchange rate (exchangeRates); null without a rate.")
    async def amount_in_base_currency(self, info: Info) -> Decimal | None:
        from schema.currency.api import request_rates

        return (await request_rates(info)).convert(self.amount, self.currency, date.today())

    @strawberry.field(description="P(this deal is won): from the latest forecast of its "
                                  "pipeline, else its stage's configured probability (see "
                                  "winProbabilitySource); its own override wins over both.")
    async def win_probability(self, info: Info) -> float:
        return (await deal_outlook(info, self)).win_probability

    @strawberry.field(description="First day of the month the deal most likely closes in "
                                  "(the forecast's median time to win), else the month of "
                                  "its expected close date.")
    async def expected_close_month(self, info: Info) -> date | None:
        return (await deal_outlook(info, self)).expected_close_month

    @strawberry.field
    async def win_probability_source(self, info: Info) -> WinProbabilitySource:
        return WinProbabilitySource((await deal_outlook(info, self)).source.value)

    @strawberry.field(description="Every stage event of this deal, in order.")
    async def history(self, info: Info) -> list[StageEvent]:
        async with info.context.uow() as uow:
            rows = await event_log.history(uow, deal_id=uuid.UUID(self.id))
        return [StageEvent.from_model(e) for e in rows]

    @strawberry.field
    async def activities(self, info: Info) -> list[Activity]:
        async with info.context.uow() as uow:
            rows = await activity_service.for_deal(uow=uow, deal_id=uuid.UUID(self.id))
        return [Activity.from_model(a) for a in rows]

    @strawberry.field(description="The earliest-due open activity.")
    async def next_activity(self, info: Info) -> Activity | None:
        async with info.context.uow() as uow:
            found = await activity_service.next_for_deals(uow=uow, deal_ids=[uuid.UUID(self.id)])
        activity = found.get(uuid.UUID(self.id))
        return Activity.from_model(activity) if activity else None

    @classmethod
    def from_model(cls, m: Any, prefetched: dict[str, Any] | None = None) -> Deal:
        def get(key: str) -> Any:
            return m.get(key) if isinstance(m, dict) else getattr(m, key)

        return cls(
            id=str(get("id")), title=get("title"), amount=get("amount"), currency=get("currency"),
            temperature=Temperature(get("temperature")), labels=list(get("labels") or []),
            custom_fields=cast(JSON, get("custom_fields") or {}),
            expected_close_date=get("expected_close_date"),
            probability_override=get("probability_override"), lost_reason=get("lost_reason"),
            version=get("version"), stage_entered_at=get("stage_entered_at"),
            created_at=get("created_at"), updated_at=get("updated_at"),
            archived_at=m.get("archived_at") if isinstance(m, dict) else m.archived_at,
            pipeline_id_=get("pipeline_id"), stage_id_=get("stage_id"),
            owner_id_=get("owner_id"), contact_id_=get("contact_id"),
            company_id_=get("company_id"), prefetched=prefetched or {},
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Deal | None]:
        rows = await by_id(info, models.Deal).load_many([uuid.UUID(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]


@strawberry.type
class BoardColumn:
    stage: Stage
    deal_count: int = strawberry.field(description="All deals in the stage, not only shown.")
    deals: list[Deal]


@strawberry.type
class Board:
    pipeline_id: strawberry.ID
    pipeline_name: str
    columns: list[BoardColumn]


@strawberry.type
class DealEdge:
    cursor: str
    node: Deal


@strawberry.type
class DealConnection:
    edges: list[DealEdge]
    page_info: PageInfo
    total_count_: strawberry.Private[Any]

    @strawberry.field(description="All deals matching the filter (one extra count query).")
    async def total_count(self) -> int:
        return int(await self.total_count_())


@strawberry.type
class StageEventPage:
    events: list[StageEvent]
    end_cursor: str | None
    has_more: bool


@strawberry.type
class DealPayload:
    deal: Deal | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteDealPayload:
    deleted_deal_id: strawberry.ID | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class BulkUpdateDealsPayload:
    deals: list[Deal] = strawberry.field(default_factory=list)
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class MoveDealPayload:
    deal: Deal | None = None
    event: StageEvent | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ActivityPayload:
    activity: Activity | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class CustomFieldDefinition:
    key: str
    label: str
    type: str
    choices: list[str] | None
    required: bool
    archived_at: datetime | None = None

    @classmethod
    def from_model(cls, d: models.CustomFieldDef) -> CustomFieldDefinition:
        return cls(key=d.key, label=d.label, type=d.type, choices=d.choices,
                   required=d.required, archived_at=d.archived_at)


@strawberry.type
class CustomFieldPayload:
    field: CustomFieldDefinition | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
