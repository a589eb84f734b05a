"""Campaign enrollment: event triggers from the stage-event log, time triggers by scan.

    Event triggers (deal created / won / lost) follow the tenant's stage-event log with a
    cursor row (`campaign_cursors`) that only advances in the transaction that enrolls: the
    log is durable and gap-free in commit order, so nothing is lost when Redis or a worker is
    down; the next tick catches up. Time triggers (stale in a stage, no activity) are a scan
    of the deals each tick. Every enrollment has a unique trigger key per campaign and deal,
    so re-processing enrolls nobody twice.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from saas.campaigns.results import TickResult
from saas.campaigns.service import TRIGGER_STAGE_KIND, stop_enrollments
from saas.db import Database, UnitOfWork

log = logging.getLogger("saas.campaigns")
EVENT_PAGE = 500
MAX_EVENT_PAGES = 20


_CAMPAIGNS = text(
    "SELECT c.id, c.trigger, c.trigger_days, c.status, c.segment_ids, c.pipeline_ids, "
    "c.stage_ids, c.labels, c.temperatures, c.created_at, "
    "(SELECT delay_minutes FROM campaign_steps s WHERE s.campaign_id = c.id "
    " ORDER BY position LIMIT 1) AS first_delay "
    "FROM campaigns c ORDER BY c.created_at, c.id")

_EVENTS = text(
    "SELECT e.seq, e.deal_id, e.kind, e.pipeline_id, e.to_stage_id, e.occurred_at, "
    "ts.kind AS to_kind, fs.kind AS from_kind, d.contact_id, d.labels, d.temperature, "
    "p.segment_id, d.archived_at "
    "FROM stage_events e "
    "JOIN deals d ON d.tenant_id = e.tenant_id AND d.id = e.deal_id "
    "JOIN pipelines p ON p.tenant_id = e.tenant_id AND p.id = e.pipeline_id "
    "LEFT JOIN stages ts ON ts.tenant_id = e.tenant_id AND ts.id = e.to_stage_id "
    "LEFT JOIN stages fs ON fs.tenant_id = e.tenant_id AND fs.id = e.from_stage_id "
    "WHERE e.seq > :after ORDER BY e.seq LIMIT :n")

_ENROLL = text(
    "INSERT INTO campaign_enrollments (tenant_id, id, campaign_id, deal_id, contact_id, "
    "trigger_key, trigger_seq, stage_id, anchor_at, status, next_step, next_due_at, enrolled_at) "
    "VALUES (:t, :id, :c, :d, :contact, :key, :seq, :stage, :anchor, 'active', 0, :due, :now) "
    "ON CONFLICT DO NOTHING RETURNING id")


def _event_trigger(ev: Any) -> str | None:
    if ev.archived_at is not None or ev.kind in ("deleted", "restored"):
        return None  # archived since: no campaign for it (restoring triggers nothing)
    if ev.kind == "created":
        return "deal_created"
    if ev.kind == "updated":
        return None
    if ev.to_kind == "won" and (ev.from_kind != "won" or ev.kind == "transferred"):
        return "deal_won"
    if ev.to_kind == "lost" and (ev.from_kind != "lost" or ev.kind == "transferred"):
        return "deal_lost"
    return None


def _in_scope(c: Any, *, pipeline_id: uuid.UUID, segment_id: uuid.UUID, stage_id: uuid.UUID,
              labels: list[str], temperature: str) -> bool:
    return ((not c.pipeline_ids or pipeline_id in c.pipeline_ids)
            and (not c.segment_ids or segment_id in c.segment_ids)
            and (not c.stage_ids or stage_id in c.stage_ids)
            and (not c.labels or bool(set(c.labels) & set(labels or [])))
            and (not c.temperatures or temperature in c.temperatures))


async def _apply_event(uow: UnitOfWork, ev: Any, campaigns: list[Any], now: datetime) -> int:
    """Enroll on a trigger; stop (or mark converted) enrollments the move invalidates."""
    enrolled = 0
    if ev.kind in ("moved", "lost", "reopened", "transferred"):
        if ev.to_kind == "open" and ev.from_kind in ("won", "lost"):
            # A lost deal came back: re-engagement worked; the campaign shows in its history.
            await uow.session.execute(text(
                "UPDATE campaign_enrollments e SET converted_seq = :seq, converted_at = :at "
                "FROM campaigns c WHERE c.tenant_id = e.tenant_id AND c.id = e.campaign_id "
                "AND e.deal_id = :d AND c.trigger = 'deal_lost' AND e.converted_seq IS NULL "
                "AND e.trigger_seq < :seq AND e.status IN ('active', 'completed')"),
                {"seq": ev.seq, "at": ev.occurred_at, "d": ev.deal_id})
        # Enrollments whose trigger no longer holds in the deal's new stage leave now.
        wrong = [t for t, kind in TRIGGER_STAGE_KIND.items() if kind != ev.to_kind]
        reason = "reopened" if ev.to_kind == "open" else "deal_moved"
        await stop_enrollments(
            uow, where="deal_id = :d AND campaign_id IN "
                       "(SELECT id FROM campaigns WHERE trigger = ANY(:wrong))",
            params={"d": ev.deal_id, "wrong": wrong}, reason=reason, now=now)
        await stop_enrollments(
            uow, where="deal_id = :d AND stage_id IS DISTINCT FROM :s AND campaign_id IN "
                       "(SELECT id FROM campaigns WHERE trigger = 'deal_stale')",
            params={"d": ev.deal_id, "s": ev.to_stage_id}, reason="deal_moved", now=now)
    trigger = _event_trigger(ev)
    if trigger is None:
        return 0
    for c in campaigns:
        if (c.trigger != trigger or c.status != "active" or c.first_delay is None
                or ev.occurred_at < c.created_at):
            continue
        if not _in_scope(c, pipeline_id=ev.pipeline_id, segment_id=ev.segment_id,
                         stage_id=ev.to_stage_id, labels=ev.labels, temperature=ev.temperature):
            continue
        row = await uow.session.execute(_ENROLL, {
            "t": uow.tenant_id, "id": uuid.uuid4(), "c": c.id, "d": ev.deal_id,
            "contact": ev.contact_id, "key": f"event:{ev.seq}", "seq": ev.seq,
            "stage": ev.to_stage_id, "anchor": ev.occurred_at,
            "due": ev.occurred_at + timedelta(minutes=c.first_delay), "now": now})
        enrolled += row.scalar() is not None
    return enrolled


async def enroll_from_events(db: Database, tenant_id: uuid.UUID, now: datetime,
                             result: TickResult) -> None:
    """Follow the stage-event log from the tenant's cursor, a page per transaction."""
    for _ in range(MAX_EVENT_PAGES):
        async with db.unit_of_work(tenant_id) as uow:
            cursor = (await uow.session.execute(text(
                "SELECT last_seq FROM campaign_cursors FOR UPDATE SKIP LOCKED"))).scalar()
            if cursor is None:  # no campaign yet, or another worker is on it right now
                return
            events = list(await uow.session.execute(_EVENTS, {"after": cursor, "n": EVENT_PAGE}))
            if not events:
                return
            campaigns = list(await uow.session.execute(_CAMPAIGNS))
            for ev in events:
                result.enrolled += await _apply_event(uow, ev, campaigns, now)
            await uow.session.execute(text(
                "UPDATE campaign_cursors SET last_seq = :s, updated_at = :now"),
                {"s": events[-1].seq, "now": now})
            result.events += len(events)
        if len(events) < EVENT_PAGE:
            return


_SCOPE_SQL = (
    "AND (cardinality(c.pipeline_ids) = 0 OR d.pipeline_id = ANY(c.pipeline_ids)) "
    "AND (cardinality(c.segment_ids) = 0 OR p.segment_id = ANY(c.segment_ids)) "
    "AND (cardinality(c.stage_ids) = 0 OR d.stage_id = ANY(c.stage_ids)) "
    "AND (cardinality(c.labels) = 0 OR d.labels && c.labels) "
    "AND (cardinality(c.temperatures) = 0 OR d.temperature = ANY(c.temperatures)) ")

LAST_TOUCH = (
    "greatest(d.stage_entered_at, (SELECT max(greatest(a.created_at, "
    "coalesce(a.done_at, a.created_at))) FROM activities a "
    "WHERE a.tenant_id = d.tenant_id AND a.deal_id = d.id))")

_FIRST_DELAY = ("(SELECT delay_minutes FROM campaign_steps st WHERE st.campaign_id = c.id "
                "ORDER BY position LIMIT 1)")


def _time_trigger_sql(trigger: str) -> tuple[str, str]:
    """(INSERT of new enrollments, UPDATE stopping outdated ones) for a time trigger."""
    if trigger == "deal_stale":
        anchor = "d.stage_entered_at"
        due = "d.stage_entered_at + make_interval(days => coalesce(c.trigger_days, s.rotting_days))"
        key = ("'stale:' || d.stage_id::text || ':' || "
               "floor(extract(epoch FROM d.stage_entered_at) * 1000000)::bigint::text")
        outdated = "(d.stage_id <> e.stage_id OR d.stage_entered_at <> e.anchor_at)"
        reason = "deal_moved"
    else:
        anchor = LAST_TOUCH
        due = f"{LAST_TOUCH} + make_interval(days => c.trigger_days)"
        key = f"'idle:' || floor(extract(epoch FROM {LAST_TOUCH}) * 1000000)::bigint::text"
        outdated = f"{LAST_TOUCH} > e.anchor_at"
        reason = "activity_logged"
    insert = (
        "INSERT INTO campaign_enrollments (tenant_id, id, campaign_id, deal_id, contact_id, "
        "trigger_key, stage_id, anchor_at, status, next_step, next_due_at, enrolled_at) "
        f"SELECT d.tenant_id, gen_random_uuid(), c.id, d.id, d.contact_id, {key}, d.stage_id, "
        f"{anchor}, 'active', 0, "
        f"CAST(:now AS timestamptz) + make_interval(mins => {_FIRST_DELAY}), :now "
        "FROM campaigns c, deals d "
        "JOIN stages s ON s.tenant_id = d.tenant_id AND s.id = d.stage_id "
        "JOIN pipelines p ON p.tenant_id = d.tenant_id AND p.id = d.pipeline_id "
        f"WHERE c.id = :c AND s.kind = 'open' AND d.archived_at IS NULL AND {due} <= :now "
        + _SCOPE_SQL +
        "ON CONFLICT DO NOTHING")
    stop = (
        "UPDATE campaign_enrollments e SET status = 'stopped', "
        f"stop_reason = '{reason}', finished_at = :now, next_due_at = NULL "
        "FROM deals d WHERE d.tenant_id = e.tenant_id AND d.id = e.deal_id "
        f"AND e.campaign_id = :c AND e.status = 'active' AND {outdated}")
    return insert, stop


async def enroll_time_triggers(db: Database, tenant_id: uuid.UUID, now: datetime,
                               result: TickResult) -> None:
    async with db.unit_of_work(tenant_id) as uow:
        campaigns = list(await uow.session.execute(text(
            "SELECT id, trigger FROM campaigns WHERE status = 'active' "
            "AND trigger IN ('deal_stale', 'no_activity') ORDER BY id")))
        for c in campaigns:
            insert, stop = _time_trigger_sql(c.trigger)
            stopped = await uow.session.execute(text(stop + " RETURNING e.id"),
                                                {"c": c.id, "now": now})
            result.stopped += len(stopped.all())
            enrolled = await uow.session.execute(text(insert + " RETURNING id"),
                                                 {"c": c.id, "now": now})
            result.enrolled += len(enrolled.all())
