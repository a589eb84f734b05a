"""Segments, pipelines and stages: create, rename, reorder, add, archive, delete."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from saas.db import UnitOfWork
from saas.errors import Conflict, InvalidStage, NotFound, ValidationFailed
from saas.pipelines import rules
from saas.pipelines.models import Pipeline, Segment, Stage
from saas.pipelines.templates import StageSpec
from tenants.principal import Principal
from tenants.scopes import Scope

KINDS = ("open", "won", "lost")
MAX_STAGES = 30


def check_spec(spec: StageSpec, field: str) -> None:
    if not spec.name.strip() or len(spec.name) > 100:
        raise ValidationFailed("stage name must be 1-100 characters", field=f"{field}.name")
    if spec.kind not in KINDS:
        raise ValidationFailed("stage kind must be open, won or lost", field=f"{field}.kind")
    if not Decimal(0) <= spec.probability <= Decimal(1):
        raise ValidationFailed("probability must be between 0 and 1", field=f"{field}.probability")
    rules.check_rotting(spec.rotting_days, f"{field}.rottingDays")


async def create_segment(
    *, uow: UnitOfWork, principal: Principal, name: str, stages: Sequence[StageSpec] | None
) -> tuple[Segment, Pipeline]:
    """A segment with its own pipeline; `stages` None means the default template."""
    principal.require(Scope.PIPELINES_WRITE)
    if stages is None:
        from saas.pipelines.segments import default_template  # it builds on this module

        stages = await default_template(uow)
    specs = list(stages)
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed("segment name must be 1-200 characters", field="name")
    if not specs or len(specs) > MAX_STAGES:
        raise ValidationFailed(f"a pipeline needs 1-{MAX_STAGES} stages", field="stages")
    for i, spec in enumerate(specs):
        check_spec(spec, f"stages[{i}]")
    rules.check_new_set([s.kind for s in specs], "stages")
    if len({s.name.strip().lower() for s in specs}) != len(specs):
        raise ValidationFailed("stage names must be unique in a pipeline", field="stages")
    tenant_id = principal.tenant_id
    segment = Segment(tenant_id=tenant_id, id=uuid.uuid4(), name=name)
    pipeline = Pipeline(tenant_id=tenant_id, id=uuid.uuid4(), segment_id=segment.id, name=name)
    try:
        async with uow.session.begin_nested():
            uow.session.add(segment)
            await uow.session.flush()
            uow.session.add(pipeline)
            await uow.session.flush()
            uow.session.add_all(
                Stage(tenant_id=tenant_id, id=uuid.uuid4(), pipeline_id=pipeline.id,
                      name=s.name.strip(), position=i, kind=s.kind, probability=s.probability,
                      rotting_days=s.rotting_days)
                for i, s in enumerate(specs)
            )
            await uow.session.flush()
    except IntegrityError as e:
        raise Conflict(f"a segment named {name!r} already exists", field="name") from e
    return segment, pipeline


async def get_pipeline(*, uow: UnitOfWork, pipeline_id: uuid.UUID) -> Pipeline:
    assert uow.tenant_id is not None
    pipeline = await uow.session.get(Pipeline, (uow.tenant_id, pipeline_id))
    if pipeline is None:
        raise NotFound("pipeline not found", field="pipelineId")
    return pipeline


async def get_stage(*, uow: UnitOfWork, stage_id: uuid.UUID, field: str = "stageId") -> Stage:
    assert uow.tenant_id is not None
    stage = await uow.session.get(Stage, (uow.tenant_id, stage_id))
    if stage is None:
        raise NotFound("stage not found", field=field)
    return stage


async def list_stages(
    *, uow: UnitOfWork, pipeline_id: uuid.UUID, include_archived: bool = False
) -> list[Stage]:
    query = select(Stage).where(Stage.pipeline_id == pipeline_id)
    if not include_archived:
        query = query.where(Stage.archived_at.is_(None))
    rows = await uow.session.execute(query.order_by(Stage.position, Stage.id))
    return list(rows.scalars())


async def add_stage(
    *, uow: UnitOfWork, principal: Principal, pipeline_id: uuid.UUID, spec: StageSpec,
    position: int | None,
) -> Stage:
    """Insert a stage at `position` (default: before the won/lost stages)."""
    principal.require(Scope.PIPELINES_WRITE)
    check_spec(spec, "input")
    await get_pipeline(uow=uow, pipeline_id=pipeline_id)
    stages = await list_stages(uow=uow, pipeline_id=pipeline_id)
    if len(stages) >= MAX_STAGES:
        raise ValidationFailed(f"a pipeline has at most {MAX_STAGES} stages", field="pipelineId")
    if position is None:
        open_stages = [s for s in stages if s.kind == "open"]
        position = (stages.index(open_stages[-1]) + 1) if open_stages else 0
    if not 0 <= position <= len(stages):
        raise ValidationFailed(f"position must be 0-{len(stages)}", field="position")
    kinds = [s.kind for s in stages]
    rules.check_order([*kinds[:position], spec.kind, *kinds[position:]], "position")
    stage = Stage(tenant_id=principal.tenant_id, id=uuid.uuid4(), pipeline_id=pipeline_id,
                  name=spec.name.strip(), position=position, kind=spec.kind,
                  probability=spec.probability, rotting_days=spec.rotting_days)
    ordered = [*stages[:position], stage, *stages[position:]]
    try:
        async with uow.session.begin_nested():
            uow.session.add(stage)
            await uow.session.flush()
            await _renumber(uow, ordered)
    except IntegrityError as e:
        raise Conflict(f"a stage named {spec.name!r} already exists", field="name") from e
    return stage


async def update_stage(
    *, uow: UnitOfWork, principal: Principal, stage_id: uuid.UUID, name: str | None,
    probability: Decimal | None, rotting_days: int | None, clear_rotting: bool = False,
) -> Stage:
    """Rename a stage or change its probability / rotting threshold."""
    principal.require(Scope.PIPELINES_WRITE)
    stage = await get_stage(uow=uow, stage_id=stage_id)
    spec = StageSpec(
        name=name if name is not None else stage.name,
        kind=stage.kind,
        probability=probability if probability is not None else stage.probability,
        rotting_days=None if clear_rotting else (
            rotting_days if rotting_days is not None else stage.rotting_days),
    )
    check_spec(spec, "input")
    try:
        async with uow.session.begin_nested():
            stage.name, stage.probability = spec.name.strip(), spec.probability
            stage.rotting_days = spec.rotting_days
            await uow.session.flush()
    except IntegrityError as e:
        raise Conflict(f"a stage named {spec.name!r} already exists", field="name") from e
    return stage


async def reorder_stages(
    *, uow: UnitOfWork, principal: Principal, pipeline_id: uuid.UUID,
    stage_ids: Sequence[uuid.UUID],
) -> list[Stage]:
    """Set the order of a pipeline's active stages; the list must name each exactly once."""
    principal.require(Scope.PIPELINES_WRITE)
    await get_pipeline(uow=uow, pipeline_id=pipeline_id)
    stages = await list_stages(uow=uow, pipeline_id=pipeline_id)
    by_id = {s.id: s for s in stages}
    if sorted(map(str, stage_ids)) != sorted(map(str, by_id)):
        raise InvalidStage("list every active stage of the pipeline exactly once",
                           field="stageIds")
    ordered = [by_id[i] for i in stage_ids]
    rules.check_order([s.kind for s in ordered], "stageIds")
    await _renumber(uow, ordered)
    return ordered


async def _renumber(uow: UnitOfWork, ordered: Sequence[Stage]) -> None:
    for position, stage in enumerate(ordered):
        stage.position = position
    await uow.session.flush()


async def _deal_count(uow: UnitOfWork, stage_id: uuid.UUID, *, archived: bool = True) -> int:
    """Deals in the stage (with archived ones unless `archived` is False)."""
    only_active = "" if archived else " AND archived_at IS NULL"
    return int((await uow.session.execute(
        text(f"SELECT count(*) FROM deals WHERE stage_id = :s{only_active}"),
        {"s": stage_id})).scalar_one())


async def archive_stage(*, uow: UnitOfWork, principal: Principal, stage_id: uuid.UUID) -> Stage:
    """Hide a stage from boards and moves; its deals must be moved out first."""
    principal.require(Scope.PIPELINES_WRITE)
    stage = await get_stage(uow=uow, stage_id=stage_id)
    if stage.archived_at is not None:
        return stage
    if (count := await _deal_count(uow, stage_id, archived=False)) > 0:
        raise Conflict(f"the stage still holds {count} deal(s); move them first", field="stageId")
    remaining = [s for s in await list_stages(uow=uow, pipeline_id=stage.pipeline_id)
                 if s.id != stage.id]
    rules.check_remaining([s.kind for s in remaining], "stageId")
    await uow.session.execute(
        update(Stage).where(Stage.tenant_id == stage.tenant_id, Stage.id == stage_id)
        .values(archived_at=func.now()))
    await uow.session.refresh(stage)
    await _renumber(uow, remaining)
    return stage


async def delete_stage(*, uow: UnitOfWork, principal: Principal, stage_id: uuid.UUID) -> None:
    """Delete a stage that never held a deal; otherwise only archiving keeps history intact."""
    principal.require(Scope.PIPELINES_WRITE)
    stage = await get_stage(uow=uow, stage_id=stage_id)
    if (count := await _deal_count(uow, stage_id)) > 0:
        raise Conflict(f"the stage holds {count} deal(s): archive it or move them first",
                       field="stageId")
    used: bool = (await uow.session.execute(
        text("SELECT EXISTS (SELECT 1 FROM stage_events WHERE to_stage_id = :s "
             "OR from_stage_id = :s)"), {"s": stage_id})).scalar_one()
    if used:
        raise Conflict("the stage appears in deal history: archive it instead", field="stageId")
    remaining = [s for s in await list_stages(uow=uow, pipeline_id=stage.pipeline_id)
                 if s.id != stage.id]
    rules.check_remaining([s.kind for s in remaining], "stageId")
    await uow.session.delete(stage)
    await uow.session.flush()
    await _renumber(uow, remaining)


async def list_segments(*, uow: UnitOfWork, include_archived: bool = False
                        ) -> list[tuple[Segment, Pipeline]]:
    query = select(Segment, Pipeline).join(Pipeline, Pipeline.segment_id == Segment.id)
    if not include_archived:
        query = query.where(Segment.archived_at.is_(None))
    rows = await uow.session.execute(query.order_by(Segment.created_at, Segment.name))
    return [(s, p) for s, p in rows]
