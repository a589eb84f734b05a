"""Campaigns: define, change, pause/resume; enrollments and sends as users see them.

A campaign is validated completely before anything is written (templates, delays, scope),
so a bad definition saves nothing. Scope ids of another tenant are invisible under RLS and
so are reported as "not found", like any unknown id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from saas.campaigns import templates
from saas.campaigns.models import Campaign, CampaignStep, Enrollment, Send
from saas.db import UnitOfWork
from saas.deals.permissions import require_edit
from saas.deals.service import get as get_deal
from saas.errors import Conflict, NotFound, ValidationFailed, VersionConflict
from saas.pipelines.models import Pipeline, Segment, Stage
from tenants.principal import Principal
from tenants.scopes import Scope

TRIGGERS = ("deal_created", "deal_won", "deal_lost", "deal_stale", "no_activity")
RECIPIENTS = ("contact", "owner")
TEMPERATURES = ("hot", "warm", "cold")
MAX_STEPS = 20
MAX_DELAY_MINUTES = 3650 * 24 * 60
MAX_LIST = 500
# The stage kind a deal must be in for a trigger's enrollment to stay meaningful.
TRIGGER_STAGE_KIND = {"deal_created": "open", "deal_won": "won", "deal_lost": "lost",
                      "deal_stale": "open", "no_activity": "open"}
UNSET: Any = object()


@dataclass
class StepSpec:
    subject: str
    body: str
    delay_days: int = 0
    delay_hours: int = 0
    delay_minutes: int = 0


@dataclass
class CampaignSpec:
    """A campaign's definition; UNSET (on update) keeps the current value."""

    name: Any = UNSET
    trigger: Any = UNSET
    trigger_days: Any = UNSET
    recipient: Any = UNSET
    segment_ids: Any = UNSET
    pipeline_ids: Any = UNSET
    stage_ids: Any = UNSET
    labels: Any = UNSET
    temperatures: Any = UNSET
    steps: Any = UNSET


@dataclass
class CampaignView:
    campaign: Campaign
    steps: list[CampaignStep] = field(default_factory=list)


def require_editor(principal: Principal) -> None:
    principal.require(Scope.CAMPAIGNS_WRITE)


async def _ids_exist(uow: UnitOfWork, model: Any, ids: list[uuid.UUID], what: str,
                     field: str) -> list[Any]:
    if not ids:
        return []
    rows: list[Any] = list(
        (await uow.session.execute(select(model).where(model.id.in_(ids)))).scalars())
    if len(rows) != len(set(ids)):
        raise NotFound(f"{what} not found", field=field)
    return rows


def _check_steps(steps: list[StepSpec], recipient: str) -> list[tuple[int, str, str]]:
    if not steps:
        raise ValidationFailed("a campaign needs at least one step", field="steps")
    if len(steps) > MAX_STEPS:
        raise ValidationFailed(f"at most {MAX_STEPS} steps", field="steps")
    checked = []
    for i, step in enumerate(steps):
        where = f"steps.{i}"
        parts = (step.delay_days, step.delay_hours, step.delay_minutes)
        if any(p < 0 for p in parts):
            raise ValidationFailed("a delay cannot be negative", field=f"{where}.delay")
        delay = step.delay_days * 1440 + step.delay_hours * 60 + step.delay_minutes
        if delay > MAX_DELAY_MINUTES:
            raise ValidationFailed("a delay is at most ten years", field=f"{where}.delay")
        subject = step.subject.strip()
        if not subject or len(subject) > 300 or "\n" in subject or "\r" in subject:
            raise ValidationFailed("a subject is one line of 1-300 characters",
                                   field=f"{where}.subject")
        body = step.body
        if not body.strip() or len(body) > 20000:
            raise ValidationFailed("a body is 1-20000 characters", field=f"{where}.body")
        for name, source in (("subject", subject), ("body", body)):
            parsed = templates.parse(source, field=f"{where}.{name}")
            if recipient != "contact" and "unsubscribe_url" in parsed.placeholders:
                raise ValidationFailed("{{unsubscribe_url}} is only for emails to contacts",
                                       field=f"{where}.{name}")
        checked.append((delay, subject, body))
    return checked


async def _validate(uow: UnitOfWork, c: Campaign, steps: Any) -> list[tuple[int, str, str]] | None:
    """Check the (merged) definition on `c`; returns checked steps when steps were given."""
    name = (c.name or "").strip()
    if not name or len(name) > 200:
        raise ValidationFailed("name must be 1-200 characters", field="name")
    c.name = name
    if c.trigger not in TRIGGERS:
        raise ValidationFailed("unknown trigger", field="trigger")
    if c.trigger == "no_activity" and c.trigger_days is None:
        raise ValidationFailed("noActivity campaigns need triggerDays", field="triggerDays")
    if c.trigger_days is not None:
        if c.trigger not in ("deal_stale", "no_activity"):
            raise ValidationFailed("triggerDays applies only to stale and no-activity triggers; "
                                   "delay the first step instead", field="triggerDays")
        if not 1 <= c.trigger_days <= 3650:
            raise ValidationFailed("triggerDays must be 1-3650", field="triggerDays")
    if c.recipient not in RECIPIENTS:
        raise ValidationFailed("recipient must be contact or owner", field="recipient")
    await _ids_exist(uow, Segment, c.segment_ids, "segment", "segmentIds")
    pipelines = await _ids_exist(uow, Pipeline, c.pipeline_ids, "pipeline", "pipelineIds")
    stages = await _ids_exist(uow, Stage, c.stage_ids, "stage", "stageIds")
    allowed_pipelines = {p.id for p in pipelines}
    if c.segment_ids:
        rows = await uow.session.execute(
            select(Pipeline.id).where(Pipeline.segment_id.in_(c.segment_ids)))
        allowed_pipelines |= set(rows.scalars())
    want_kind = TRIGGER_STAGE_KIND[c.trigger]
    for stage in stages:
        if allowed_pipelines and stage.pipeline_id not in allowed_pipelines:
            raise ValidationFailed("a stage outside the campaign's segments/pipelines",
                                   field="stageIds")
        if stage.kind != want_kind:
            raise ValidationFailed(f"this trigger applies to {want_kind} stages only",
                                   field="stageIds")
    labels = sorted({label.strip() for label in c.labels if label.strip()})
    if len(labels) > 20 or any(len(label) > 50 for label in labels):
        raise ValidationFailed("at most 20 labels of up to 50 characters", field="labels")
    c.labels = labels
    if any(t not in TEMPERATURES for t in c.temperatures):
        raise ValidationFailed("temperatures are hot, warm or cold", field="temperatures")
    c.temperatures = sorted(set(c.temperatures))
    if steps is UNSET:
        existing = await steps_of(uow, [c.id])
        # A changed recipient must still fit the templates that stay.
        _check_steps([StepSpec(subject=s.subject, body=s.body)
                      for s in existing.get(c.id, [])], c.recipient)
        return None
    return _check_steps(list(steps), c.recipient)


def _apply(c: Campaign, spec: CampaignSpec) -> None:
    for name in ("name", "trigger", "trigger_days", "recipient"):
        value = getattr(spec, name)
        if value is not UNSET:
            setattr(c, name, value)
    for name in ("segment_ids", "pipeline_ids", "stage_ids", "labels", "temperatures"):
        value = getattr(spec, name)
        if value is not UNSET:
            setattr(c, name, list(dict.fromkeys(value or [])))


async def _write_steps(uow: UnitOfWork, c: Campaign, steps: list[tuple[int, str, str]]) -> None:
    await uow.session.execute(
        text("DELETE FROM campaign_steps WHERE campaign_id = :c"), {"c": c.id})
    for position, (delay, subject, body) in enumerate(steps):
        uow.session.add(CampaignStep(tenant_id=c.tenant_id, campaign_id=c.id, position=position,
                                     delay_minutes=delay, subject=subject, body=body))


async def _flush_unique(uow: UnitOfWork) -> None:
    try:
        await uow.session.flush()
    except IntegrityError as e:
        if "campaigns_tenant_id_name_key" in str(e):
            raise Conflict("a campaign with this name exists", field="name") from e
        raise


async def _start_cursor(uow: UnitOfWork) -> None:
    """Enrollment follows stage events from now on: history is not replayed."""
    await uow.session.execute(text(
        "INSERT INTO campaign_cursors (tenant_id, last_seq) "
        "SELECT :t, coalesce((SELECT event_seq FROM tenant_counters WHERE tenant_id = :t), 0) "
        "ON CONFLICT (tenant_id) DO NOTHING"), {"t": uow.tenant_id})


async def create(*, uow: UnitOfWork, principal: Principal, spec: CampaignSpec) -> CampaignView:
    require_editor(principal)
    c = Campaign(tenant_id=principal.tenant_id, id=uuid.uuid4(), status="active", version=1,
                 trigger_days=None, segment_ids=[], pipeline_ids=[], stage_ids=[], labels=[],
                 temperatures=[], created_by=principal.user_id, name="", trigger="")
    _apply(c, spec)
    if spec.recipient is UNSET:
        c.recipient = "owner" if c.trigger == "deal_stale" else "contact"
    steps = await _validate(uow, c, spec.steps if spec.steps is not UNSET else [])
    assert steps is not None
    uow.session.add(c)
    await _flush_unique(uow)
    await _write_steps(uow, c, steps)
    await _start_cursor(uow)
    await uow.session.flush()
    await uow.session.refresh(c)
    return CampaignView(c, await _steps(uow, c.id))


async def get(*, uow: UnitOfWork, campaign_id: uuid.UUID, for_update: bool = False) -> Campaign:
    query = select(Campaign).where(Campaign.id == campaign_id)
    if for_update:
        query = query.with_for_update()
    c = (await uow.session.execute(query)).scalar_one_or_none()
    if c is None:
        raise NotFound("campaign not found", field="campaignId")
    return c


async def _steps(uow: UnitOfWork, campaign_id: uuid.UUID) -> list[CampaignStep]:
    return (await steps_of(uow, [campaign_id])).get(campaign_id, [])


async def steps_of(uow: UnitOfWork, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[CampaignStep]]:
    rows = await uow.session.execute(select(CampaignStep).where(
        CampaignStep.campaign_id.in_(ids)).order_by(CampaignStep.campaign_id,
                                                    CampaignStep.position))
    out: dict[uuid.UUID, list[CampaignStep]] = {}
    for s in rows.scalars():
        out.setdefault(s.campaign_id, []).append(s)
    return out


async def update_campaign(
    *, uow: UnitOfWork, principal: Principal, campaign_id: uuid.UUID,
    expected_version: int | None, spec: CampaignSpec,
) -> CampaignView:
    """Change a definition. Active enrollments keep their position: step N is whatever step
    N is when it comes due (documented in docs/campaigns.md)."""
    require_editor(principal)
    c = await get(uow=uow, campaign_id=campaign_id, for_update=True)
    if c.status == "archived":
        raise Conflict("the campaign is archived", field="campaignId")
    if expected_version is not None and c.version != expected_version:
        raise VersionConflict(f"the campaign is at version {c.version}; reload and retry",
                              field="expectedVersion", current_version=c.version)
    with uow.session.no_autoflush:  # validate first: nothing invalid reaches the database
        _apply(c, spec)
        steps = await _validate(uow, c, spec.steps)
    if steps is not None:
        await _write_steps(uow, c, steps)
    c.version += 1
    c.updated_at = func.now()
    await _flush_unique(uow)
    await uow.session.refresh(c)
    return CampaignView(c, await _steps(uow, c.id))


async def set_status(*, uow: UnitOfWork, principal: Principal, campaign_id: uuid.UUID,
                     status: str, now: datetime) -> CampaignView:
    """Pause (every active enrollment leaves; nothing more is sent) or resume (new triggers
    enroll again; those who left while paused stay out)."""
    require_editor(principal)
    c = await get(uow=uow, campaign_id=campaign_id, for_update=True)
    if c.status == "archived":
        raise Conflict("the campaign is archived", field="campaignId")
    if c.status != status:
        c.status = status
        c.version += 1
        c.updated_at = func.now()
        if status == "paused":
            await stop_enrollments(uow, where="campaign_id = :c", params={"c": c.id},
                                   reason="campaign_paused", now=now)
        else:
            await _start_cursor(uow)
        await uow.session.flush()
        await uow.session.refresh(c)
    return CampaignView(c, await _steps(uow, c.id))


async def stop_enrollments(uow: UnitOfWork, *, where: str, params: dict[str, Any], reason: str,
                           now: datetime) -> list[uuid.UUID]:
    """Stop the active enrollments matching `where` (SQL over campaign_enrollments) and cancel
    their pending retries. A send already handed to SMTP cannot be recalled."""
    rows = await uow.session.execute(text(
        "UPDATE campaign_enrollments SET status = 'stopped', stop_reason = :reason, "
        "finished_at = :now, next_due_at = NULL "
        f"WHERE status = 'active' AND ({where}) RETURNING id"),
        {**params, "reason": reason, "now": now})
    ids: list[uuid.UUID] = list(rows.scalars())
    if ids:
        await uow.session.execute(text(
            "UPDATE campaign_sends SET status = 'cancelled', next_attempt_at = NULL "
            "WHERE enrollment_id = ANY(:ids) AND status = 'retry'"), {"ids": ids})
    return ids


async def list_campaigns(*, uow: UnitOfWork, limit: int) -> list[CampaignView]:
    rows = list((await uow.session.execute(
        select(Campaign).where(Campaign.status != "archived").order_by(Campaign.name)
        .limit(limit))).scalars())
    steps = await steps_of(uow, [c.id for c in rows])
    return [CampaignView(c, steps.get(c.id, [])) for c in rows]


async def mark_replied(*, uow: UnitOfWork, principal: Principal, deal_id: uuid.UUID,
                       campaign_id: uuid.UUID | None, now: datetime) -> list[Enrollment]:
    """The contact answered: the deal's active enrollments (or one campaign's) leave."""
    deal = await get_deal(uow=uow, deal_id=deal_id)
    await require_edit(uow, principal, deal)
    if campaign_id is not None:
        await get(uow=uow, campaign_id=campaign_id)
    where = "deal_id = :d" + (" AND campaign_id = :c" if campaign_id else "")
    ids = await stop_enrollments(uow, where=where, params={"d": deal_id, "c": campaign_id},
                                 reason="replied", now=now)
    if not ids:
        return []
    rows = await uow.session.execute(select(Enrollment).where(Enrollment.id.in_(ids))
                                     .execution_options(populate_existing=True))
    return list(rows.scalars())


async def enrollments(*, uow: UnitOfWork, deal_id: uuid.UUID | None = None,
                      campaign_id: uuid.UUID | None = None, status: str | None = None,
                      ids: list[uuid.UUID] | None = None, limit: int = 100) -> list[Enrollment]:
    query = select(Enrollment)
    if ids is not None:
        query = query.where(Enrollment.id.in_(ids))
    if deal_id is not None:
        query = query.where(Enrollment.deal_id == deal_id)
    if campaign_id is not None:
        query = query.where(Enrollment.campaign_id == campaign_id)
    if status is not None:
        query = query.where(Enrollment.status == status)
    rows = await uow.session.execute(
        query.order_by(Enrollment.enrolled_at.desc(), Enrollment.id).limit(limit))
    return list(rows.scalars())


async def enrollments_of(*, uow: UnitOfWork, campaign_ids: list[uuid.UUID],
                         status: str | None, limit: int) -> dict[uuid.UUID, list[Enrollment]]:
    """The newest `limit` enrollments of each campaign, in one statement (a window per
    campaign), so a list of campaigns with their enrollments costs the same statements as
    one campaign."""
    ranked = select(Enrollment.id, func.row_number().over(
        partition_by=Enrollment.campaign_id,
        order_by=(Enrollment.enrolled_at.desc(), Enrollment.id)).label("n")).where(
        Enrollment.campaign_id.in_(campaign_ids))
    if status is not None:
        ranked = ranked.where(Enrollment.status == status)
    inner = ranked.subquery()
    rows = await uow.session.execute(
        select(Enrollment).join(inner, inner.c.id == Enrollment.id).where(inner.c.n <= limit)
        .order_by(Enrollment.campaign_id, Enrollment.enrolled_at.desc(), Enrollment.id))
    out: dict[uuid.UUID, list[Enrollment]] = {i: [] for i in campaign_ids}
    for e in rows.scalars():
        out[e.campaign_id].append(e)
    return out


async def sends(*, uow: UnitOfWork, enrollment_ids: list[uuid.UUID] | None = None,
                campaign_id: uuid.UUID | None = None, deal_id: uuid.UUID | None = None,
                limit: int = 500) -> list[Send]:
    query = select(Send)
    if enrollment_ids is not None:
        query = query.where(Send.enrollment_id.in_(enrollment_ids))
    if campaign_id is not None:
        query = query.where(Send.campaign_id == campaign_id)
    if deal_id is not None:
        query = query.where(Send.deal_id == deal_id)
    rows = await uow.session.execute(
        query.order_by(Send.created_at, Send.enrollment_id, Send.step).limit(limit))
    return list(rows.scalars())

