"""Campaign sending, exactly once per enrollment and step (see docs/campaigns.md).

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

import email.policy
import io
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from sqlalchemy import text

from saas.campaigns import templates, unsubscribe
from saas.campaigns.enrollment import LAST_TOUCH
from saas.campaigns.mailer import Fenced, Mailer, Permanent, Transient, Unconfirmed
from saas.campaigns.results import TickResult
from saas.campaigns.service import TRIGGER_STAGE_KIND, stop_enrollments
from saas.db import Database, UnitOfWork
from saas.settings import Settings

log = logging.getLogger("saas.campaigns")



# ---------------------------------------------------------------------------- sending

_CONTEXT = text(
    "SELECT d.id, d.title, d.amount, d.currency, d.expected_close_date, d.temperature, d.labels, "
    "d.lost_reason, d.stage_id, d.stage_entered_at, d.contact_id, "
    f"{LAST_TOUCH} AS last_touch, "
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
        # Raw, never folded: a folded or RFC 2047-encoded List-Unsubscribe (what the email
        # package does to any header line over 78 characters) hides the URL from mail
        # clients. The URL is ASCII without whitespace (PUBLIC_BASE_URL is checked, the
        # token is base64url), and RFC 5322 allows lines up to 998 characters.
        msg.set_raw("List-Unsubscribe", f"<{claim.unsubscribe_url}>")
        msg.set_raw("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    msg.set_content(claim.body)
    out = io.BytesIO()
    BytesGenerator(out, policy=_WIRE).flatten(msg)
    return out.getvalue()


# SMTP line endings, 7-bit bodies; headers set raw (above) are written as they are.
_WIRE = email.policy.SMTP.clone(cte_type="7bit", refold_source="none")


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
