"""The campaign engine a worker runs once a minute per tenant: enroll, then send what is due.

Enrollment
    Event triggers (deal created / won / lost) follow the tenant's stage-event log with a
    cursor row (`campaign_cursors`) that only advances in the transaction that enrolls: the
    log is durable and gap-free in commit order, so nothing is lost when Redis or a worker is
    down; the next tick catches up. Time triggers (stale in a stage, no activity) are a scan
    of the deals each tick. Every enrollment has a unique trigger key per campaign and deal,
    so re-processing enrolls nobody twice.

Sending (exactly once per enrollment and step, see docs/campaigns.md)
    1. claim: lock the due enrollment (SKIP LOCKED), re-check the stop conditions, render
       the step, INSERT the send row (unique per enrollment+step) as 'claimed'; commit.
    2. SMTP MAIL/RCPT; then mark the row 'delivering' (only if this worker's claim is still
       current and the enrollment still active); commit; then DATA.
    3. mark 'sent' and advance the enrollment; commit.
    A worker that dies before (2) leaves a 'claimed' row that is re-claimed after the lease;
    one that dies after (2) leaves 'delivering', which is never re-sent: after the lease it
    becomes 'unconfirmed' and the enrollment moves on. Duplicates are impossible; a lost
    message is possible only if the process dies during DATA.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from aiosmtplib.email import flatten_message
from sqlalchemy import text

from saas.campaigns import templates, unsubscribe
from saas.campaigns.mailer import Fenced, Mailer, Permanent, Transient, Unconfirmed
from saas.campaigns.service import TRIGGER_STAGE_KIND, stop_enrollments
from saas.db import Database, UnitOfWork
from saas.settings import Settings

log = logging.getLogger("saas.campaigns")
EVENT_PAGE = 500
MAX_EVENT_PAGES = 20


@dataclass
class TickResult:
    enrolled: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unconfirmed: int = 0
    stopped: int = 0
    events: int = 0
    details: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}


# ---------------------------------------------------------------------------- enrollment

_CAMPAIGNS = text(
    "SELECT c.id, c.trigger, c.trigger_days, c.status, c.segment_ids, c.pipeline_ids, "
    "c.stage_ids, c.labels, c.temperatures, c.created_at, "
    "(SELECT delay_minutes FROM campaign_steps s WHERE s.campaign_id = c.id "
    " ORDER BY position LIMIT 1) AS first_delay "
    "FROM campaigns c ORDER BY c.created_at, c.id")

_EVENTS = text(
    "SELECT e.seq, e.deal_id, e.kind, e.pipeline_id, e.to_stage_id, e.occurred_at, "
    "ts.kind AS to_kind, fs.kind AS from_kind, d.contact_id, d.labels, d.temperature, "
    "p.segment_id "
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

_LAST_TOUCH = (
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
        anchor = _LAST_TOUCH
        due = f"{_LAST_TOUCH} + make_interval(days => c.trigger_days)"
        key = f"'idle:' || floor(extract(epoch FROM {_LAST_TOUCH}) * 1000000)::bigint::text"
        outdated = f"{_LAST_TOUCH} > e.anchor_at"
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
        f"WHERE c.id = :c AND s.kind = 'open' AND {due} <= :now " + _SCOPE_SQL +
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


# ---------------------------------------------------------------------------- sending

_CONTEXT = text(
    "SELECT d.id, d.title, d.amount, d.currency, d.expected_close_date, d.temperature, d.labels, "
    "d.lost_reason, d.stage_id, d.stage_entered_at, d.contact_id, "
    f"{_LAST_TOUCH} AS last_touch, "
    "s.name AS stage_name, s.kind AS stage_kind, p.name AS pipeline_name, "
    "ct.name AS contact_name, ct.email AS contact_email, ct.phone AS contact_phone, "
    "ct.unsubscribed_at, co.name AS company_name, "
    "u.name AS owner_name, u.email AS owner_email, u.is_active AS owner_active, "
    "t.name AS tenant_name, t.sender_email "
    "FROM deals d "
    "JOIN stages s ON s.tenant_id = d.tenant_id AND s.id = d.stage_id "
    "JOIN pipelines p ON p.tenant_id = d.tenant_id AND p.id = d.pipeline_id "
    "JOIN tenants t ON t.id = d.tenant_id "
    "LEFT JOIN contacts ct ON ct.tenant_id = d.tenant_id AND ct.id = d.contact_id "
    "LEFT JOIN companies co ON co.tenant_id = d.tenant_id "
    "  AND co.id = coalesce(d.company_id, ct.company_id) "
    "LEFT JOIN users u ON u.tenant_id = d.tenant_id AND u.id = d.owner_id "
    "WHERE d.id = :d")


@dataclass
class Claim:
    send_id: uuid.UUID
    enrollment_id: uuid.UUID
    step: int
    attempt: int
    sender: str
    sender_name: str
    recipient: str
    subject: str
    body: str
    message_id: str
    unsubscribe_url: str | None


def _first_name(name: str | None) -> str:
    return (name or "").split(" ")[0]


def _values(ctx: Any, campaign_name: str, unsubscribe_url: str | None) -> dict[str, str]:
    def s(v: Any) -> str:
        return "" if v is None else str(v)

    return {
        "deal.title": s(ctx.title), "deal.amount": s(ctx.amount), "deal.currency": s(ctx.currency),
        "deal.stage": s(ctx.stage_name), "deal.pipeline": s(ctx.pipeline_name),
        "deal.expected_close_date": ctx.expected_close_date.isoformat()
        if ctx.expected_close_date else "",
        "deal.temperature": s(ctx.temperature), "deal.labels": ", ".join(ctx.labels or []),
        "deal.lost_reason": s(ctx.lost_reason),
        "contact.name": s(ctx.contact_name), "contact.first_name": _first_name(ctx.contact_name),
        "contact.email": s(ctx.contact_email), "contact.phone": s(ctx.contact_phone),
        "company.name": s(ctx.company_name),
        "owner.name": s(ctx.owner_name), "owner.first_name": _first_name(ctx.owner_name),
        "owner.email": s(ctx.owner_email), "tenant.name": s(ctx.tenant_name),
        "campaign.name": campaign_name, "unsubscribe_url": s(unsubscribe_url),
    }


def _stop_reason(campaign: Any, e: Any, ctx: Any) -> str | None:
    """Why this enrollment must leave before its next step, or None."""
    if campaign.status != "active":
        return "campaign_paused"
    if ctx.stage_kind != TRIGGER_STAGE_KIND[campaign.trigger]:
        return "reopened" if ctx.stage_kind == "open" else "deal_moved"
    if campaign.trigger == "deal_stale" and (
            ctx.stage_id != e.stage_id or ctx.stage_entered_at != e.anchor_at):
        return "deal_moved"
    if campaign.trigger == "no_activity" and ctx.last_touch > e.anchor_at:
        return "activity_logged"
    if campaign.recipient == "contact":
        if ctx.unsubscribed_at is not None:
            return "unsubscribed"
        if not ctx.contact_email:
            return "no_recipient"
    elif not ctx.owner_email or not ctx.owner_active:
        return "no_recipient"
    return None


async def _advance(uow: UnitOfWork, enrollment_id: uuid.UUID, step: int, now: datetime) -> None:
    """The step is done (sent, or unconfirmed): schedule the next one, or complete."""
    delay = (await uow.session.execute(text(
        "SELECT st.delay_minutes FROM campaign_steps st JOIN campaign_enrollments e "
        "ON e.tenant_id = st.tenant_id AND e.campaign_id = st.campaign_id "
        "WHERE e.id = :e AND st.position = :p"), {"e": enrollment_id, "p": step + 1})).scalar()
    if delay is None:
        await uow.session.execute(text(
            "UPDATE campaign_enrollments SET status = 'completed', next_step = :n, "
            "next_due_at = NULL, finished_at = :now "
            "WHERE id = :e AND status = 'active' AND next_step = :p"),
            {"e": enrollment_id, "p": step, "n": step + 1, "now": now})
    else:
        await uow.session.execute(text(
            "UPDATE campaign_enrollments SET next_step = :n, next_due_at = :due "
            "WHERE id = :e AND status = 'active' AND next_step = :p"),
            {"e": enrollment_id, "p": step, "n": step + 1,
             "due": now + timedelta(minutes=delay)})


async def _stop_one(uow: UnitOfWork, enrollment_id: uuid.UUID, reason: str,
                    now: datetime) -> None:
    await stop_enrollments(uow, where="id = :e", params={"e": enrollment_id}, reason=reason,
                           now=now)


async def _claim(db: Database, settings: Settings, tenant_id: uuid.UUID,
                 enrollment_id: uuid.UUID, now: datetime, result: TickResult) -> Claim | None:
    """Transaction 1: decide under the enrollment's row lock; record the claim."""
    lease = timedelta(seconds=settings.campaign_send_lease_seconds)
    async with db.unit_of_work(tenant_id) as uow:
        session = uow.session
        e = (await session.execute(text(
            "SELECT * FROM campaign_enrollments WHERE id = :e AND status = 'active' "
            "AND next_due_at <= :now FOR UPDATE SKIP LOCKED"),
            {"e": enrollment_id, "now": now})).first()
        if e is None:
            return None  # another worker holds it, or it is no longer due
        campaign = (await session.execute(text(
            "SELECT id, name, trigger, recipient, status FROM campaigns WHERE id = :c"),
            {"c": e.campaign_id})).one()
        step = (await session.execute(text(
            "SELECT delay_minutes, subject, body FROM campaign_steps "
            "WHERE campaign_id = :c AND position = :p"),
            {"c": e.campaign_id, "p": e.next_step})).first()
        existing = (await session.execute(text(
            "SELECT id, status, attempts, claimed_at, next_attempt_at FROM campaign_sends "
            "WHERE enrollment_id = :e AND step = :p FOR UPDATE"),
            {"e": e.id, "p": e.next_step})).first()
        if existing is not None and existing.status in ("sent", "unconfirmed"):
            await _advance(uow, e.id, e.next_step, now)  # bookkeeping only; never re-sent
            return None
        if existing is not None and existing.status == "delivering":
            if existing.claimed_at > now - lease:
                return None  # being delivered by a live worker
            # Its worker died while handing the message over: it may have arrived. Never
            # send it again; record that and go on with the sequence.
            await session.execute(text(
                "UPDATE campaign_sends SET status = 'unconfirmed', error = :err WHERE id = :s"),
                {"s": existing.id, "err": "the worker stopped during SMTP DATA; not re-sent "
                                          "(the message may or may not have arrived)"})
            await _advance(uow, e.id, e.next_step, now)
            result.unconfirmed += 1
            return None
        if existing is not None and existing.status in ("failed", "cancelled"):
            await _stop_one(uow, e.id, "delivery_failed", now)
            return None
        ctx = (await session.execute(_CONTEXT, {"d": e.deal_id})).one()
        reason = _stop_reason(campaign, e, ctx)
        if reason is not None:
            await _stop_one(uow, e.id, reason, now)
            result.stopped += 1
            return None
        if step is None:  # the campaign lost steps since: nothing left to send
            await session.execute(text(
                "UPDATE campaign_enrollments SET status = 'completed', next_due_at = NULL, "
                "finished_at = :now WHERE id = :e"), {"e": e.id, "now": now})
            return None
        if existing is not None:
            claimable = ((existing.status == "retry" and existing.next_attempt_at <= now)
                         or (existing.status == "claimed" and existing.claimed_at <= now - lease))
            if not claimable:
                return None
            row = (await session.execute(text(
                "UPDATE campaign_sends SET status = 'claimed', attempts = attempts + 1, "
                "claimed_at = :now, next_attempt_at = NULL WHERE id = :s "
                "RETURNING id, attempts, sender, recipient, subject, body, message_id, "
                "unsubscribe_url"), {"s": existing.id, "now": now})).one()
        else:
            unsub = (unsubscribe.url_for(settings, uow.tenant_id, ctx.contact_id)  # type: ignore[arg-type]
                     if campaign.recipient == "contact" else None)
            values = _values(ctx, campaign.name, unsub)
            subject = templates.parse(step.subject, field="subject").render(values)
            subject = " ".join(subject.split())[:900] or campaign.name
            body_template = templates.parse(step.body, field="body")
            body = body_template.render(values)
            if unsub and "unsubscribe_url" not in body_template.placeholders:
                body += f"\n\n--\nTo stop receiving these emails: {unsub}\n"
            sender = ctx.sender_email or settings.mail_default_sender
            domain = sender.rsplit("@", 1)[-1] or "localhost"
            inserted = (await session.execute(text(
                "INSERT INTO campaign_sends (tenant_id, id, enrollment_id, step, campaign_id, "
                "deal_id, status, recipient, sender, subject, body, message_id, "
                "unsubscribe_url, attempts, claimed_at) VALUES (:t, :id, :e, :p, :c, :d, "
                "'claimed', :rcpt, :sender, :subject, :body, :mid, :unsub, 1, :now) "
                "ON CONFLICT (tenant_id, enrollment_id, step) DO NOTHING "
                "RETURNING id, attempts, sender, recipient, subject, body, message_id, "
                "unsubscribe_url"),
                {"t": uow.tenant_id, "id": uuid.uuid4(), "e": e.id, "p": e.next_step,
                 "c": e.campaign_id, "d": e.deal_id,
                 "rcpt": ctx.contact_email if campaign.recipient == "contact"
                 else ctx.owner_email,
                 "sender": sender, "subject": subject, "body": body,
                 # Derived from the send key: a receiver can drop a duplicate by Message-ID.
                 "mid": f"<campaign.{e.id}.{e.next_step}@{domain}>", "unsub": unsub,
                 "now": now})).first()
            if inserted is None:
                return None
            row = inserted
        return Claim(send_id=row.id, enrollment_id=e.id, step=e.next_step,
                     attempt=row.attempts, sender=row.sender, sender_name=ctx.tenant_name,
                     recipient=row.recipient, subject=row.subject, body=row.body,
                     message_id=row.message_id, unsubscribe_url=row.unsubscribe_url)


def _message(claim: Claim, now: datetime) -> bytes:
    msg = EmailMessage()
    msg["From"] = formataddr((claim.sender_name, claim.sender))
    msg["To"] = claim.recipient
    msg["Subject"] = claim.subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = claim.message_id
    msg["X-Campaign-Send"] = f"{claim.enrollment_id}/{claim.step}"
    if claim.unsubscribe_url:
        msg["List-Unsubscribe"] = f"<{claim.unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(claim.body)
    return flatten_message(msg, utf8=False, cte_type="7bit")


async def _mark_delivering(db: Database, tenant_id: uuid.UUID, claim: Claim) -> bool:
    """Transaction 2, committed before DATA: from here on the send is never repeated."""
    async with db.unit_of_work(tenant_id) as uow:
        active = (await uow.session.execute(text(
            "SELECT status = 'active' FROM campaign_enrollments WHERE id = :e FOR SHARE"),
            {"e": claim.enrollment_id})).scalar()
        if active:
            row = await uow.session.execute(text(
                "UPDATE campaign_sends SET status = 'delivering' WHERE id = :s "
                "AND status = 'claimed' AND attempts = :a RETURNING id"),
                {"s": claim.send_id, "a": claim.attempt})
            if row.scalar() is not None:
                return True
        # Stopped meanwhile (paused, unsubscribed, replied) or re-claimed: not ours to send.
        await uow.session.execute(text(
            "UPDATE campaign_sends SET status = 'cancelled' WHERE id = :s AND status = 'claimed' "
            "AND attempts = :a AND NOT EXISTS (SELECT 1 FROM campaign_enrollments "
            "WHERE id = :e AND status = 'active')"),
            {"s": claim.send_id, "a": claim.attempt, "e": claim.enrollment_id})
        return False


def backoff(attempt: int) -> timedelta:
    """1, 2, 4, ... minutes after each transient failure, at most an hour."""
    return timedelta(minutes=min(2 ** (attempt - 1), 60))


async def _finish(db: Database, settings: Settings, tenant_id: uuid.UUID, claim: Claim,
                  now: datetime, outcome: str, error: str | None, result: TickResult) -> None:
    """Transaction 3: record the outcome (only for this worker's attempt)."""
    params = {"s": claim.send_id, "a": claim.attempt, "now": now, "err": error}
    async with db.unit_of_work(tenant_id) as uow:
        session = uow.session
        # Lock order everywhere: the enrollment, then its send (no deadlock with a claim).
        await session.execute(text("SELECT 1 FROM campaign_enrollments WHERE id = :e FOR UPDATE"),
                              {"e": claim.enrollment_id})
        if outcome == "sent":
            done = (await session.execute(text(
                "UPDATE campaign_sends SET status = 'sent', sent_at = :now, error = NULL "
                "WHERE id = :s AND attempts = :a AND status IN ('delivering', 'unconfirmed') "
                "RETURNING id"), params)).scalar()
            if done is not None:
                await _advance(uow, claim.enrollment_id, claim.step, now)
                result.sent += 1
        elif outcome == "unconfirmed":
            done = (await session.execute(text(
                "UPDATE campaign_sends SET status = 'unconfirmed', error = :err "
                "WHERE id = :s AND attempts = :a AND status = 'delivering' RETURNING id"),
                params)).scalar()
            if done is not None:
                await _advance(uow, claim.enrollment_id, claim.step, now)
                result.unconfirmed += 1
        elif outcome == "transient" and claim.attempt < settings.campaign_max_send_attempts:
            retry_at = now + backoff(claim.attempt)
            done = (await session.execute(text(
                "UPDATE campaign_sends SET status = 'retry', error = :err, next_attempt_at = :at "
                "WHERE id = :s AND attempts = :a AND status IN ('claimed', 'delivering') "
                "RETURNING id"), {**params, "at": retry_at})).scalar()
            if done is not None:
                await session.execute(text(
                    "UPDATE campaign_enrollments SET next_due_at = :at "
                    "WHERE id = :e AND status = 'active'"),
                    {"e": claim.enrollment_id, "at": retry_at})
                result.retried += 1
        else:  # permanent, or transient too many times
            if outcome == "transient":
                error = f"gave up after {claim.attempt} attempts: {error}"
            done = (await session.execute(text(
                "UPDATE campaign_sends SET status = 'failed', error = :err, next_attempt_at = NULL "
                "WHERE id = :s AND attempts = :a AND status IN ('claimed', 'delivering') "
                "RETURNING id"), {**params, "err": error})).scalar()
            if done is not None:
                await _stop_one(uow, claim.enrollment_id, "delivery_failed", now)
                result.failed += 1


async def send_due(db: Database, settings: Settings, tenant_id: uuid.UUID, now: datetime,
                   mailer: Mailer, result: TickResult) -> None:
    async with db.unit_of_work(tenant_id) as uow:
        due: list[uuid.UUID] = list((await uow.session.execute(text(
            "SELECT id FROM campaign_enrollments WHERE status = 'active' AND next_due_at <= :now "
            "ORDER BY next_due_at, id LIMIT :n"),
            {"now": now, "n": settings.campaign_batch_size})).scalars())
    for enrollment_id in due:
        claim = await _claim(db, settings, tenant_id, enrollment_id, now, result)
        if claim is None:
            continue

        async def before_data(claim: Claim = claim) -> bool:  # type: ignore[assignment]
            return await _mark_delivering(db, tenant_id, claim)

        try:
            await mailer.deliver(sender=claim.sender, recipient=claim.recipient,
                                 message=_message(claim, now), before_data=before_data)
        except Fenced:
            continue
        except Transient as e:
            log.warning("campaign send %s: transient failure: %s", claim.send_id, e.message)
            await _finish(db, settings, tenant_id, claim, now, "transient", e.message, result)
        except Permanent as e:
            log.warning("campaign send %s: permanent failure: %s", claim.send_id, e.message)
            await _finish(db, settings, tenant_id, claim, now, "permanent", e.message, result)
        except Unconfirmed as e:
            log.error("campaign send %s: unconfirmed: %s", claim.send_id, e.message)
            await _finish(db, settings, tenant_id, claim, now, "unconfirmed", e.message, result)
        else:
            await _finish(db, settings, tenant_id, claim, now, "sent", None, result)


async def has_campaigns(db: Database, tenant_id: uuid.UUID) -> bool:
    async with db.unit_of_work(tenant_id) as uow:
        return bool((await uow.session.execute(text(
            "SELECT EXISTS (SELECT 1 FROM campaign_cursors)"))).scalar())


async def tick(db: Database, settings: Settings, tenant_id: uuid.UUID, now: datetime,
               mailer: Mailer) -> TickResult:
    """One tenant's minute: enroll from events and time triggers, then send what is due."""
    result = TickResult()
    if not await has_campaigns(db, tenant_id):
        return result
    await enroll_from_events(db, tenant_id, now, result)
    await enroll_time_triggers(db, tenant_id, now, result)
    await send_due(db, settings, tenant_id, now, mailer, result)
    return result
