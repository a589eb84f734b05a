"""Segments after creation: rename, archive (with their pipeline), restore; and the tenant's
default stage template that `createSegment` starts from.

Archiving a segment is refused while its pipeline holds active deals (transfer them to
another segment or archive them first), so no deal is hidden by accident; an archived
segment and its pipeline leave `segments`, take no new or transferred deals, and keep their
history (analytics and node(id) of old deals still resolve their stages). A tenant keeps at
least one active segment.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from saas.db import UnitOfWork
from saas.errors import Conflict, NotFound, ValidationFailed
from saas.pipelines import rules
from saas.pipelines.models import Pipeline, Segment
from saas.pipelines.service import MAX_STAGES, check_spec
from saas.pipelines.templates import DEFAULT_STAGES, StageSpec
from tenants.principal import Principal
from tenants.scopes import Scope


async def _segment(uow: UnitOfWork, segment_id: uuid.UUID) -> tuple[Segment, Pipeline]:
    row = (await uow.session.execute(
        select(Segment, Pipeline).join(Pipeline, Pipeline.segment_id == Segment.id)
        .where(Segment.id == segment_id).with_for_update(of=Segment))).one_or_none()
    if row is None:
        raise NotFound("segment not found", field="segmentId")
    return row[0], row[1]


async def rename(*, uow: UnitOfWork, principal: Principal, segment_id: uuid.UUID,
                 name: str) -> tuple[Segment, Pipeline]:
    """Rename the segment and its pipeline (one pipeline per segment)."""
    principal.require(Scope.PIPELINES_WRITE)
    segment, pipeline = await _segment(uow, segment_id)
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed("segment name must be 1-200 characters", field="name")
    try:
        async with uow.session.begin_nested():
            segment.name = pipeline.name = name
            await uow.session.flush()
    except IntegrityError as e:
        raise Conflict(f"a segment named {name!r} already exists", field="name") from e
    return segment, pipeline


async def archive(*, uow: UnitOfWork, principal: Principal,
                  segment_id: uuid.UUID) -> tuple[Segment, Pipeline]:
    principal.require(Scope.PIPELINES_WRITE)
    segment, pipeline = await _segment(uow, segment_id)
    if segment.archived_at is not None:
        raise Conflict("the segment is already archived", field="segmentId")
    active = int((await uow.session.execute(text(
        "SELECT count(*) FROM deals WHERE pipeline_id = :p AND archived_at IS NULL"),
        {"p": pipeline.id})).scalar_one())
    if active:
        raise Conflict(f"the segment's pipeline holds {active} active deal(s): transfer or "
                       "archive them first", field="segmentId")
    others = int((await uow.session.execute(text(
        "SELECT count(*) FROM segments WHERE archived_at IS NULL AND id <> :s"),
        {"s": segment.id})).scalar_one())
    if not others:
        raise Conflict("a tenant keeps at least one active segment", field="segmentId")
    segment.archived_at = func.now()
    await uow.session.flush()
    await uow.session.refresh(segment)
    return segment, pipeline


async def restore(*, uow: UnitOfWork, principal: Principal,
                  segment_id: uuid.UUID) -> tuple[Segment, Pipeline]:
    principal.require(Scope.PIPELINES_WRITE)
    segment, pipeline = await _segment(uow, segment_id)
    if segment.archived_at is None:
        raise Conflict("the segment is not archived", field="segmentId")
    segment.archived_at = None
    await uow.session.flush()
    return segment, pipeline


async def check_open_for_deals(uow: UnitOfWork, pipeline: Pipeline, field: str) -> None:
    """New and transferred deals go only to active segments' pipelines."""
    archived = (await uow.session.execute(
        select(Segment.archived_at).where(Segment.id == pipeline.segment_id))).scalar_one()
    if archived is not None:
        raise Conflict("the pipeline's segment is archived", field=field)


def _spec_json(spec: StageSpec) -> dict[str, Any]:
    return {"name": spec.name.strip(), "kind": spec.kind, "probability": str(spec.probability),
            "rotting_days": spec.rotting_days}


def _spec(value: dict[str, Any]) -> StageSpec:
    try:
        probability = Decimal(str(value["probability"]))
    except (InvalidOperation, KeyError) as e:
        raise ValueError(f"stored stage template is corrupt: {value!r}") from e
    return StageSpec(value["name"], value["kind"], probability, value.get("rotting_days"))


async def default_template(uow: UnitOfWork) -> list[StageSpec]:
    """The stage set createSegment starts from: the tenant's own, else the built-in one."""
    stored = (await uow.session.execute(text(
        "SELECT stages FROM stage_templates"))).scalar_one_or_none()
    return [_spec(s) for s in stored] if stored else list(DEFAULT_STAGES)


async def set_default_template(*, uow: UnitOfWork, principal: Principal,
                               stages: list[StageSpec]) -> list[StageSpec]:
    """Replace the tenant's default template (existing segments keep their stages)."""
    principal.require(Scope.PIPELINES_WRITE)
    if not stages or len(stages) > MAX_STAGES:
        raise ValidationFailed(f"a template needs 1-{MAX_STAGES} stages", field="stages")
    for i, spec in enumerate(stages):
        check_spec(spec, f"stages[{i}]")
    rules.check_new_set([s.kind for s in stages], "stages")
    if len({s.name.strip().lower() for s in stages}) != len(stages):
        raise ValidationFailed("stage names must be unique in a pipeline", field="stages")
    await uow.session.execute(text(
        "INSERT INTO stage_templates (tenant_id, stages, updated_by) "
        "VALUES (:t, CAST(:s AS jsonb), :by) ON CONFLICT (tenant_id) DO UPDATE "
        "SET stages = EXCLUDED.stages, updated_by = EXCLUDED.updated_by, updated_at = now()"),
        {"t": principal.tenant_id, "s": json.dumps([_spec_json(s) for s in stages]),
         "by": principal.user_id})
    return [_spec(_spec_json(s)) for s in stages]
