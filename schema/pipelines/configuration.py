"""Mutations and queries of configuration after creation: segments (rename, archive,
restore), the default stage template, custom field definitions (rename, choices, archive)."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from saas.deals import custom_fields
from saas.pipelines import segments
from saas.pipelines.templates import StageSpec
from schema.context import Info
from schema.deals.types import CustomFieldDefinition, CustomFieldPayload
from schema.errors import UserError
from schema.mutations import payload
from schema.nodes import decode_id
from schema.pipelines.api import StageInput
from schema.pipelines.types import Pipeline, Segment, SegmentPayload, StageKind
from tenants.scopes import Scope


@strawberry.type(description="One stage of the default template.")
class TemplateStage:
    name: str
    kind: StageKind
    probability: Decimal
    rotting_days: int | None

    @classmethod
    def from_spec(cls, s: StageSpec) -> TemplateStage:
        return cls(name=s.name, kind=StageKind(s.kind), probability=s.probability,
                   rotting_days=s.rotting_days)


@strawberry.type
class StageTemplatePayload:
    stages: list[TemplateStage] | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class UpdateSegmentInput:
    segment_id: strawberry.ID
    name: str


@strawberry.input
class SegmentRefInput:
    segment_id: strawberry.ID


@strawberry.input(description="Replaces the stage set new segments start from (existing "
                              "segments keep theirs).")
class SetDefaultStageTemplateInput:
    stages: list[StageInput]


@strawberry.input(description="Rename, add choices, change required. A type never changes.")
class UpdateCustomFieldInput:
    key: str
    label: str | None = None
    add_choices: list[str] | None = None
    required: bool | None = None
    type: str | None = strawberry.field(
        default=None, description="Only accepted when it is the current type.")


@strawberry.input
class CustomFieldRefInput:
    key: str


def _segment(s: object, p: object) -> SegmentPayload:
    return SegmentPayload(segment=Segment(id=str(s.id), name=s.name,  # type: ignore[attr-defined]
                                          pipeline=Pipeline.from_model(p)))  # type: ignore[arg-type]


def _field(d: object) -> CustomFieldPayload:
    return CustomFieldPayload(field=CustomFieldDefinition.from_model(d))  # type: ignore[arg-type]


@strawberry.type
class ConfigurationQuery:
    @strawberry.field(description="The stage set createSegment uses when given none.")
    async def default_stage_template(self, info: Info) -> list[TemplateStage]:
        info.context.require(Scope.DEALS_READ)
        async with info.context.uow() as uow:
            return [TemplateStage.from_spec(s) for s in await segments.default_template(uow)]


@strawberry.type
class ConfigurationMutation:
    @strawberry.mutation(description="Rename a segment and its pipeline.")
    async def update_segment(self, info: Info, input: UpdateSegmentInput) -> SegmentPayload:
        principal = info.context.require_principal()

        async def act() -> SegmentPayload:
            principal.require(Scope.PIPELINES_WRITE)
            segment_id = decode_id(input.segment_id, "Segment", field="segmentId")
            async with info.context.uow() as uow:
                s, p = await segments.rename(uow=uow, principal=principal,
                                             segment_id=segment_id, name=input.name)
            return _segment(s, p)

        return await payload(SegmentPayload, act)

    @strawberry.mutation(description="Archive a segment with its pipeline; refused while the "
                                     "pipeline holds active deals.")
    async def archive_segment(self, info: Info, input: SegmentRefInput) -> SegmentPayload:
        principal = info.context.require_principal()

        async def act() -> SegmentPayload:
            principal.require(Scope.PIPELINES_WRITE)
            segment_id = decode_id(input.segment_id, "Segment", field="segmentId")
            async with info.context.uow() as uow:
                s, p = await segments.archive(uow=uow, principal=principal,
                                              segment_id=segment_id)
            return _segment(s, p)

        return await payload(SegmentPayload, act)

    @strawberry.mutation
    async def restore_segment(self, info: Info, input: SegmentRefInput) -> SegmentPayload:
        principal = info.context.require_principal()

        async def act() -> SegmentPayload:
            principal.require(Scope.PIPELINES_WRITE)
            segment_id = decode_id(input.segment_id, "Segment", field="segmentId")
            async with info.context.uow() as uow:
                s, p = await segments.restore(uow=uow, principal=principal,
                                              segment_id=segment_id)
            return _segment(s, p)

        return await payload(SegmentPayload, act)

    @strawberry.mutation
    async def set_default_stage_template(
            self, info: Info, input: SetDefaultStageTemplateInput) -> StageTemplatePayload:
        principal = info.context.require_principal()

        async def act() -> StageTemplatePayload:
            principal.require(Scope.PIPELINES_WRITE)
            async with info.context.uow() as uow:
                stages = await segments.set_default_template(
                    uow=uow, principal=principal, stages=[s.spec() for s in input.stages])
            return StageTemplatePayload(stages=[TemplateStage.from_spec(s) for s in stages])

        return await payload(StageTemplatePayload, act)

    @strawberry.mutation
    async def update_custom_field(self, info: Info,
                                  input: UpdateCustomFieldInput) -> CustomFieldPayload:
        principal = info.context.require_principal()

        async def act() -> CustomFieldPayload:
            principal.require(Scope.PIPELINES_WRITE)
            async with info.context.uow() as uow:
                d = await custom_fields.update(
                    uow=uow, principal=principal, key=input.key, label=input.label,
                    add_choices=input.add_choices, type=input.type, required=input.required)
            return _field(d)

        return await payload(CustomFieldPayload, act)

    @strawberry.mutation(description="Hide a custom field: no new values, deals keep theirs.")
    async def archive_custom_field(self, info: Info,
                                   input: CustomFieldRefInput) -> CustomFieldPayload:
        principal = info.context.require_principal()

        async def act() -> CustomFieldPayload:
            principal.require(Scope.PIPELINES_WRITE)
            async with info.context.uow() as uow:
                d = await custom_fields.set_archived(uow=uow, principal=principal,
                                                     key=input.key, archived=True)
            return _field(d)

        return await payload(CustomFieldPayload, act)

    @strawberry.mutation
    async def restore_custom_field(self, info: Info,
                                   input: CustomFieldRefInput) -> CustomFieldPayload:
        principal = info.context.require_principal()

        async def act() -> CustomFieldPayload:
            principal.require(Scope.PIPELINES_WRITE)
            async with info.context.uow() as uow:
                d = await custom_fields.set_archived(uow=uow, principal=principal,
                                                     key=input.key, archived=False)
            return _field(d)

        return await payload(CustomFieldPayload, act)
