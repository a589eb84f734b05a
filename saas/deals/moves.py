"""Stage moves: forward, backward, to lost (with a reason), reopen; and pipeline transfers."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy import func, text

from saas.db import UnitOfWork
from saas.deals import events
from saas.deals.models import Deal, StageEvent
from saas.deals.permissions import require_edit
from saas.deals.service import check_active, check_version, get
from saas.errors import InvalidStage, ValidationFailed
from saas.pipelines import segments
from saas.pipelines import service as pipelines
from saas.pipelines.models import Stage
from tenants.principal import Principal
from tenants.scopes import Scope

MAX_REASON = 500


def _kind_of_move(from_stage: Stage, to_stage: Stage) -> str:
    if to_stage.kind == "lost":
        return "lost"
    if from_stage.kind == "lost":
        return "reopened"
    return "moved"


def _lost_reason(to_stage: Stage, lost_reason: str | None) -> str | None:
    if to_stage.kind != "lost":
        return None
    reason = (lost_reason or "").strip()
    if not reason:
        raise ValidationFailed("moving a deal to a lost stage needs a lost reason",
                               field="lostReason")
    if len(reason) > MAX_REASON:
        raise ValidationFailed(f"lost reason is at most {MAX_REASON} characters",
                               field="lostReason")
    return reason


async def _target(uow: UnitOfWork, stage_id: uuid.UUID, pipeline_id: uuid.UUID) -> Stage:
    stage = await pipelines.get_stage(uow=uow, stage_id=stage_id, field="toStageId")
    if stage.pipeline_id != pipeline_id:
        raise InvalidStage("the stage belongs to another pipeline", field="toStageId")
    if stage.archived_at is not None:
        raise InvalidStage("the stage is archived", field="toStageId")
    return stage


async def move(
    *, uow: UnitOfWork, principal: Principal, deal_id: uuid.UUID, to_stage_id: uuid.UUID,
    expected_version: int, lost_reason: str | None = None,
) -> tuple[Deal, StageEvent, Stage]:
    """Move a deal within its pipeline, checking its version; appends the stage event.
    Returns the deal, its event and the stage it is in now."""
    principal.require(Scope.DEALS_WRITE)
    deal = await get(uow=uow, deal_id=deal_id, for_update=True)
    await require_edit(uow, principal, deal)
    check_version(deal, expected_version)
    check_active(deal)
    to_stage = await _target(uow, to_stage_id, deal.pipeline_id)
    if to_stage.id == deal.stage_id:
        raise InvalidStage("the deal is already in this stage", field="toStageId")
    from_stage = await pipelines.get_stage(uow=uow, stage_id=deal.stage_id)
    reason = _lost_reason(to_stage, lost_reason)
    kind = _kind_of_move(from_stage, to_stage)
    deal.stage_id = to_stage.id
    deal.lost_reason = reason
    deal.version += 1
    deal.stage_entered_at = deal.updated_at = func.now()
    await uow.session.flush()
    await uow.session.refresh(deal)
    data = {"reengaged_by": await _reengagements(uow, deal.id)} if kind == "reopened" else None
    event = await events.append(uow, principal=principal, deal=deal, kind=kind,
                                from_stage_id=from_stage.id, data=data)
    return deal, event, to_stage


_REENGAGEMENTS = text(
    """
    SELECT c.id, c.name,
           (SELECT count(*) FROM campaign_sends s
            WHERE s.enrollment_id = e.id AND s.status = 'sent') AS sent
    FROM campaign_enrollments e JOIN campaigns c ON c.id = e.campaign_id
    WHERE e.deal_id = :deal AND e.status = 'active' AND c.trigger = 'deal_lost'
    ORDER BY e.enrolled_at, c.id
    """)


async def _reengagements(uow: UnitOfWork, deal_id: uuid.UUID) -> list[dict[str, object]]:
    """Re-engagement campaigns running for the deal when it is reopened: kept in the event,
    so the deal's history says which campaign brought it back."""
    rows = await uow.session.execute(_REENGAGEMENTS, {"deal": deal_id})
    return [{"campaign_id": str(r.id), "campaign": r.name, "messages_sent": r.sent}
            for r in rows]


async def transfer(
    *, uow: UnitOfWork, principal: Principal, deal_id: uuid.UUID, to_pipeline_id: uuid.UUID,
    expected_version: int, to_stage_id: uuid.UUID | None = None,
    stage_map: Mapping[uuid.UUID, uuid.UUID] | None = None, lost_reason: str | None = None,
) -> tuple[Deal, StageEvent]:
    """Move a deal to another segment's pipeline. The target stage is `to_stage_id`, else the
    mapping of its current stage, else a stage of the same name; otherwise we ask for one."""
    principal.require(Scope.DEALS_WRITE)
    deal = await get(uow=uow, deal_id=deal_id, for_update=True)
    await require_edit(uow, principal, deal)
    check_version(deal, expected_version)
    check_active(deal)
    target_pipeline = await pipelines.get_pipeline(uow=uow, pipeline_id=to_pipeline_id)
    await segments.check_open_for_deals(uow, target_pipeline, "toPipelineId")
    if target_pipeline.id == deal.pipeline_id:
        raise ValidationFailed("the deal is already in this pipeline; use moveDeal",
                               field="toPipelineId")
    from_stage = await pipelines.get_stage(uow=uow, stage_id=deal.stage_id)
    chosen = to_stage_id or (stage_map or {}).get(from_stage.id)
    if chosen is None:
        candidates = await pipelines.list_stages(uow=uow, pipeline_id=target_pipeline.id)
        same = [s for s in candidates if s.name.lower() == from_stage.name.lower()]
        if not same:
            raise InvalidStage(
                f"no stage named {from_stage.name!r} in the target pipeline: choose toStageId",
                field="toStageId")
        chosen = same[0].id
    to_stage = await _target(uow, chosen, target_pipeline.id)
    reason = _lost_reason(to_stage, lost_reason or deal.lost_reason)
    from_pipeline = deal.pipeline_id
    deal.pipeline_id, deal.stage_id, deal.lost_reason = target_pipeline.id, to_stage.id, reason
    deal.version += 1
    deal.stage_entered_at = deal.updated_at = func.now()
    await uow.session.flush()
    await uow.session.refresh(deal)
    event = await events.append(uow, principal=principal, deal=deal, kind="transferred",
                                from_stage_id=from_stage.id, from_pipeline_id=from_pipeline)
    return deal, event
