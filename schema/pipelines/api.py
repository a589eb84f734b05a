"""Queries and mutations of segments, pipelines and stages."""

from __future__ import annotations

from decimal import Decimal

import strawberry
from strawberry.relay import GlobalID

from saas.pipelines import service as pipelines
from saas.pipelines.templates import StageSpec
from schema.context import Info
from schema.mutations import payload
from schema.nodes import decode_id
from schema.pipelines.types import (
    DeleteStagePayload,
    Pipeline,
    Segment,
    SegmentPayload,
    Stage,
    StageKind,
    StagePayload,
    StagesPayload,
)
from tenants.scopes import Scope


@strawberry.input
class StageInput:
    name: str
    kind: StageKind = StageKind.OPEN
    probability: Decimal = Decimal("0.1")
    rotting_days: int | None = None

    def spec(self) -> StageSpec:
        return StageSpec(self.name, self.kind.value, self.probability, self.rotting_days)


@strawberry.input
class CreateSegmentInput:
    name: str
    stages: list[StageInput] | None = strawberry.field(
        default=None, description="The stage set; omit to start from the default template.")


@strawberry.input
class AddStageInput:
    pipeline_id: strawberry.ID
    stage: StageInput
    position: int | None = None


@strawberry.input
class UpdateStageInput:
    stage_id: strawberry.ID
    name: str | None = None
    probability: Decimal | None = None
    rotting_days: int | None = None
    clear_rotting_days: bool = False


@strawberry.input
class ReorderStagesInput:
    pipeline_id: strawberry.ID
    stage_ids: list[strawberry.ID]


@strawberry.input
class StageRefInput:
    stage_id: strawberry.ID


@strawberry.type
class PipelinesQuery:
    @strawberry.field(description="The tenant's segments, each with its pipeline.")
    async def segments(self, info: Info) -> list[Segment]:
        info.context.require(Scope.DEALS_READ)
        async with info.context.uow() as uow:
            rows = await pipelines.list_segments(uow=uow)
        return [Segment(id=str(s.id), name=s.name, pipeline=Pipeline.from_model(p))
                for s, p in rows]


@strawberry.type
class PipelinesMutation:
    @strawberry.mutation(description="Add a segment with its own pipeline (admins).")
    async def create_segment(self, info: Info, input: CreateSegmentInput) -> SegmentPayload:
        principal = info.context.require_principal()

        async def act() -> SegmentPayload:
            principal.require(Scope.PIPELINES_WRITE)
            specs = [s.spec() for s in input.stages] if input.stages is not None else None
            async with info.context.uow() as uow:
                segment, pipeline = await pipelines.create_segment(
                    uow=uow, principal=principal, name=input.name, stages=specs)
            return SegmentPayload(segment=Segment(id=str(segment.id), name=segment.name,
                                                  pipeline=Pipeline.from_model(pipeline)))

        return await payload(SegmentPayload, act)

    @strawberry.mutation
    async def add_stage(self, info: Info, input: AddStageInput) -> StagePayload:
        principal = info.context.require_principal()

        async def act() -> StagePayload:
            principal.require(Scope.PIPELINES_WRITE)
            pipeline_id = decode_id(input.pipeline_id, "Pipeline", field="pipelineId")
            async with info.context.uow() as uow:
                stage = await pipelines.add_stage(uow=uow, principal=principal,
                                                  pipeline_id=pipeline_id,
                                                  spec=input.stage.spec(),
                                                  position=input.position)
            return StagePayload(stage=Stage.from_row(stage))

        return await payload(StagePayload, act)

    @strawberry.mutation(description="Rename a stage or change its probability / rotting days.")
    async def update_stage(self, info: Info, input: UpdateStageInput) -> StagePayload:
        principal = info.context.require_principal()

        async def act() -> StagePayload:
            principal.require(Scope.PIPELINES_WRITE)
            stage_id = decode_id(input.stage_id, "Stage", field="stageId")
            async with info.context.uow() as uow:
                stage = await pipelines.update_stage(
                    uow=uow, principal=principal, stage_id=stage_id, name=input.name,
                    probability=input.probability, rotting_days=input.rotting_days,
                    clear_rotting=input.clear_rotting_days)
            return StagePayload(stage=Stage.from_row(stage))

        return await payload(StagePayload, act)

    @strawberry.mutation
    async def reorder_stages(self, info: Info, input: ReorderStagesInput) -> StagesPayload:
        principal = info.context.require_principal()

        async def act() -> StagesPayload:
            principal.require(Scope.PIPELINES_WRITE)
            pipeline_id = decode_id(input.pipeline_id, "Pipeline", field="pipelineId")
            ids = [decode_id(i, "Stage", field="stageIds") for i in input.stage_ids]
            async with info.context.uow() as uow:
                stages = await pipelines.reorder_stages(uow=uow, principal=principal,
                                                        pipeline_id=pipeline_id, stage_ids=ids)
            return StagesPayload(stages=[Stage.from_row(s) for s in stages])

        return await payload(StagesPayload, act)

    @strawberry.mutation(description="Hide a stage; only possible once it holds no deals.")
    async def archive_stage(self, info: Info, input: StageRefInput) -> StagePayload:
        principal = info.context.require_principal()

        async def act() -> StagePayload:
            principal.require(Scope.PIPELINES_WRITE)
            stage_id = decode_id(input.stage_id, "Stage", field="stageId")
            async with info.context.uow() as uow:
                stage = await pipelines.archive_stage(uow=uow, principal=principal,
                                                      stage_id=stage_id)
            return StagePayload(stage=Stage.from_row(stage))

        return await payload(StagePayload, act)

    @strawberry.mutation(description="Delete a stage that never held a deal.")
    async def delete_stage(self, info: Info, input: StageRefInput) -> DeleteStagePayload:
        principal = info.context.require_principal()

        async def act() -> DeleteStagePayload:
            principal.require(Scope.PIPELINES_WRITE)
            stage_id = decode_id(input.stage_id, "Stage", field="stageId")
            async with info.context.uow() as uow:
                await pipelines.delete_stage(uow=uow, principal=principal, stage_id=stage_id)
            return DeleteStagePayload(
                deleted_stage_id=strawberry.ID(str(GlobalID("Stage", str(stage_id)))))

        return await payload(DeleteStagePayload, act)
