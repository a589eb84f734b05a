"""Leaving a campaign: replied, reopened (re-engagement shows in history), unsubscribed,
paused; and SMTP failures: transient ones retry with backoff, permanent ones fail."""

from __future__ import annotations

import httpx

from saas.db import Database
from saas.settings import Settings
from tests.campaigns.support import (
    PAUSE,
    REPLIED,
    RESUME,
    Clock,
    SmtpServer,
    contact,
    create_campaign,
    enrollments,
    raw,
    run_jobs,
)
from tests.deals.ops import HISTORY, create_deal, default_pipeline, move, stage_ids
from tests.factories import TenantFactory, TenantHandle

TWO_STEPS = [{"delayMinutes": 0, "subject": "One {{ deal.title }}", "body": "First."},
             {"delayDays": 3, "subject": "Two {{ deal.title }}", "body": "Second."}]


async def _setup(tenants: TenantFactory, trigger: str, **campaign: object,
                 ) -> tuple[TenantHandle, dict[str, object], dict[str, str], dict[str, object]]:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    c = await create_campaign(admin, name=f"C {trigger}", trigger=trigger,
                              steps=campaign.pop("steps", TWO_STEPS), **campaign)
    return t, pipeline, stage_ids(pipeline), c


async def _deal(t: TenantHandle, pipeline: dict[str, object], title: str) -> tuple[dict, str]:
    address = f"{title.lower().replace(' ', '-')}@{t.slug}.test"
    c = await contact(t.admin_caller, title, address)
    deal = await create_deal(t.admin_caller, pipeline["id"], title, contactId=c)  # type: ignore[arg-type]
    return deal, address


async def test_replied_and_reopened_stop_and_re_engagement_shows_in_history(
    tenants: TenantFactory, mail_settings: Settings, db: Database, smtp: SmtpServer,
    clock: Clock,
) -> None:
    t, pipeline, stages, _ = await _setup(tenants, "DEAL_LOST")
    admin = t.admin_caller
    replied, replied_to = await _deal(t, pipeline, "Replied")
    reopened, reopened_to = await _deal(t, pipeline, "Reopened")
    await move(admin, replied["id"], stages["Lost"], 1, reason="budget")
    await move(admin, reopened["id"], stages["Lost"], 1, reason="timing")
    clock.advance(minutes=1)
    await run_jobs(mail_settings, db, clock, t.id)  # step one to both

    data = await admin.ok(REPLIED, deal=replied["id"])
    assert [(e["status"], e["stopReason"]) for e in data["markReplied"]["stopped"]] == [
        ("STOPPED", "REPLIED")]
    reopen = await move(admin, reopened["id"], stages["Proposal"], 2)
    assert reopen["event"]["kind"] == "REOPENED"
    clock.advance(days=10)
    await run_jobs(mail_settings, db, clock, t.id)

    assert [r.subject for r in smtp.handler.for_recipient(replied_to)] == ["One Replied"]
    assert [r.subject for r in smtp.handler.for_recipient(reopened_to)] == ["One Reopened"]
    [e] = await enrollments(admin, deal=reopened["id"])
    assert (e["status"], e["stopReason"], e["campaign"]["name"]) == (
        "STOPPED", "REOPENED", "C DEAL_LOST")
    history = (await admin.ok(HISTORY, id=reopened["id"]))["node"]["history"]
    assert e["convertedByEventSeq"] == history[-1]["seq"] and e["convertedAt"] is not None
    assert history[-1]["kind"] == "REOPENED"
    assert history[-1]["data"] == {"reengaged_by": [{
        "campaign_id": str(raw(e["campaign"]["id"])), "campaign": "C DEAL_LOST",
        "messages_sent": 1}]}
    # Lost again later: a new re-engagement enrollment starts (the trigger is a new event).
    await move(admin, reopened["id"], stages["Lost"], 3, reason="again")
    clock.advance(minutes=1)
    await run_jobs(mail_settings, db, clock, t.id)
    assert [r.subject for r in smtp.handler.for_recipient(reopened_to)] == [
        "One Reopened", "One Reopened"]
    assert [x["status"] for x in await enrollments(admin, deal=reopened["id"])] == [
        "ACTIVE", "STOPPED"]


async def test_unsubscribe_link_stops_every_campaign_of_the_contact(
    tenants: TenantFactory, mail_settings: Settings, db: Database, smtp: SmtpServer,
    clock: Clock, client: httpx.AsyncClient,
) -> None:
    t, pipeline, stages, _ = await _setup(tenants, "DEAL_WON")
    await create_campaign(t.admin_caller, name="Also won", trigger="DEAL_WON", steps=TWO_STEPS)
    deal, address = await _deal(t, pipeline, "Unsub")
    await move(t.admin_caller, deal["id"], stages["Closing"], 1)
    clock.advance(minutes=1)
    await run_jobs(mail_settings, db, clock, t.id)
    received = smtp.handler.for_recipient(address)
    assert len(received) == 2
    link = received[0].message["List-Unsubscribe"].strip("<>")
    path = link.removeprefix(mail_settings.public_base_url)

    bad = await client.get(path[:-3] + "AAA")
    ok = await client.get(path)
    again = await client.post(path)  # RFC 8058 one-click, and idempotent
    clock.advance(days=5)
    await run_jobs(mail_settings, db, clock, t.id)

    assert (bad.status_code, ok.status_code, again.status_code) == (404, 200, 200)
    assert "unsubscribed" in ok.text
    assert len(smtp.handler.for_recipient(address)) == 2
    rows = await enrollments(t.admin_caller, deal=deal["id"])
    assert {(e["status"], e["stopReason"]) for e in rows} == {("STOPPED", "UNSUBSCRIBED")}
    contacts = await t.admin_caller.ok("{ contacts { name unsubscribed } }")
    assert {"name": "Unsub", "unsubscribed": True} in contacts["contacts"]


async def test_paused_campaign_sends_nothing_and_resume_enrolls_new_triggers_only(
    tenants: TenantFactory, mail_settings: Settings, db: Database, smtp: SmtpServer,
    clock: Clock,
) -> None:
    steps = [{"delayDays": 1, "subject": "Hello {{ deal.title }}", "body": "x"}]
    t, pipeline, stages, campaign = await _setup(tenants, "DEAL_WON", steps=steps)
    admin = t.admin_caller
    before, _ = await _deal(t, pipeline, "Before")
    await move(admin, before["id"], stages["Closing"], 1)
    clock.advance(minutes=1)
    await run_jobs(mail_settings, db, clock, t.id)
    paused = await admin.ok(PAUSE, id=campaign["id"])
    during, _ = await _deal(t, pipeline, "During")
    await move(admin, during["id"], stages["Closing"], 1)
    clock.advance(days=2)
    await run_jobs(mail_settings, db, clock, t.id)
    assert paused["pauseCampaign"]["campaign"]["status"] == "PAUSED"
    assert smtp.handler.received == []
    [e] = await enrollments(admin, deal=before["id"])
    assert (e["status"], e["stopReason"]) == ("STOPPED", "CAMPAIGN_PAUSED")
    assert await enrollments(admin, deal=during["id"]) == []

    await admin.ok(RESUME, id=campaign["id"])
    after, after_to = await _deal(t, pipeline, "After")
    await move(admin, after["id"], stages["Closing"], 1)
    clock.advance(minutes=1)
    await run_jobs(mail_settings, db, clock, t.id)
    clock.advance(days=2)
    await run_jobs(mail_settings, db, clock, t.id)
    assert [r.rcpt_tos for r in smtp.handler.received] == [[after_to]]


async def test_transient_failures_retry_with_backoff_and_permanent_ones_fail(
    tenants: TenantFactory, mail_settings: Settings, db: Database, smtp: SmtpServer,
    clock: Clock,
) -> None:
    steps = [{"delayMinutes": 0, "subject": "Hi {{ deal.title }}", "body": "x"},
             {"delayDays": 1, "subject": "Again {{ deal.title }}", "body": "y"}]
    t, pipeline, _, _ = await _setup(tenants, "DEAL_CREATED", steps=steps)
    flaky, flaky_to = await _deal(t, pipeline, "Flaky")
    clock.advance(minutes=1)
    smtp.handler.rcpt_replies = ["451 4.3.0 try again later", "421 4.7.0 busy"]
    await run_jobs(mail_settings, db, clock, t.id)
    [e] = await enrollments(t.admin_caller, deal=flaky["id"])
    [s] = e["sends"]
    assert (s["status"], s["attempts"], s["error"]) == ("RETRY", 1, "451 4.3.0 try again later")
    await run_jobs(mail_settings, db, clock, t.id)  # not yet: backoff is one minute
    clock.advance(minutes=1)
    await run_jobs(mail_settings, db, clock, t.id)  # second try: 421, backoff two minutes
    clock.advance(minutes=1)
    await run_jobs(mail_settings, db, clock, t.id)
    assert smtp.handler.received == []
    clock.advance(minutes=1)
    await run_jobs(mail_settings, db, clock, t.id)
    [e] = await enrollments(t.admin_caller, deal=flaky["id"])
    assert [(s["status"], s["attempts"], s["error"]) for s in e["sends"]] == [("SENT", 3, None)]
    assert [r.subject for r in smtp.handler.received] == ["Hi Flaky"]

    bounced, bounced_to = await _deal(t, pipeline, "Bounced")
    clock.advance(minutes=1)
    smtp.handler.rcpt_replies = ["550 5.1.1 no such mailbox"]
    await run_jobs(mail_settings, db, clock, t.id)
    clock.advance(days=3)
    await run_jobs(mail_settings, db, clock, t.id)
    [e] = await enrollments(t.admin_caller, deal=bounced["id"])
    assert (e["status"], e["stopReason"]) == ("STOPPED", "DELIVERY_FAILED")
    assert [(s["status"], s["error"]) for s in e["sends"]] == [
        ("FAILED", "550 5.1.1 no such mailbox")]
    assert smtp.handler.for_recipient(bounced_to) == []
    assert len(smtp.handler.for_recipient(flaky_to)) == 2  # its second step went on


async def test_stale_deal_reminds_its_owner_and_moving_it_stops_the_reminders(
    tenants: TenantFactory, mail_settings: Settings, db: Database, smtp: SmtpServer,
    clock: Clock,
) -> None:
    steps = [{"delayMinutes": 0, "subject": "{{ deal.title }} is stuck in {{ deal.stage }}",
              "body": "{{ owner.first_name }}, {{ deal.title }} has not moved."},
             {"delayDays": 2, "subject": "Still stuck: {{ deal.title }}", "body": "!"}]
    t = await tenants.create()
    pipeline = await default_pipeline(t.admin_caller)
    stages = stage_ids(pipeline)
    campaign = await create_campaign(t.admin_caller, name="Stale", trigger="DEAL_STALE",
                                     steps=steps, triggerDays=5,
                                     stageIds=[stages["Lead generation"]])
    assert campaign["recipient"] == "OWNER"
    stuck, _ = await _deal(t, pipeline, "Stuck")
    elsewhere, _ = await _deal(t, pipeline, "Elsewhere")  # out of the campaign's stages
    await move(t.admin_caller, elsewhere["id"], stages["Proposal"], 1)
    clock.advance(days=4)
    await run_jobs(mail_settings, db, clock, t.id)
    assert smtp.handler.received == []
    clock.advance(days=1, minutes=1)
    await run_jobs(mail_settings, db, clock, t.id)
    [reminder] = smtp.handler.received
    assert reminder.rcpt_tos == [t.admin_email]
    assert reminder.subject == "Stuck is stuck in Lead generation"
    assert reminder.body.startswith(f"{t.admin_email.split('@')[0]}, Stuck has not moved.")
    assert "unsubscribe" not in reminder.body.lower()
    await move(t.admin_caller, stuck["id"], stages["Proposal"], 1)
    clock.advance(days=2)
    await run_jobs(mail_settings, db, clock, t.id)
    assert len(smtp.handler.received) == 1
    [e] = await enrollments(t.admin_caller, deal=stuck["id"])
    assert (e["status"], e["stopReason"]) == ("STOPPED", "DEAL_MOVED")


ACTIVITY = """mutation($deal: ID!, $at: DateTime!) { createActivity(input: {dealId: $deal,
  kind: CALL, subject: "Called", doneAt: $at}) { errors { code } } }"""


async def test_no_activity_follow_up_stops_when_an_activity_is_logged(
    tenants: TenantFactory, mail_settings: Settings, db: Database, smtp: SmtpServer,
    clock: Clock,
) -> None:
    steps = [{"delayMinutes": 0, "subject": "Still interested in {{ deal.title }}?",
              "body": "Hi {{ contact.first_name }}"},
             {"delayDays": 2, "subject": "Last call: {{ deal.title }}", "body": "Bye"}]
    t, pipeline, _, _ = await _setup(tenants, "NO_ACTIVITY", steps=steps, triggerDays=7)
    quiet, quiet_to = await _deal(t, pipeline, "Quiet")
    busy, busy_to = await _deal(t, pipeline, "Busy")
    clock.advance(days=7, minutes=1)
    # Busy was called just now (in the test's time).
    await t.admin_caller.ok(ACTIVITY, deal=busy["id"], at=clock().isoformat())
    await run_jobs(mail_settings, db, clock, t.id)
    await run_jobs(mail_settings, db, clock, t.id)  # reminded once per quiet spell
    assert [r.subject for r in smtp.handler.for_recipient(quiet_to)] == [
        "Still interested in Quiet?"]
    assert smtp.handler.for_recipient(busy_to) == []
    clock.advance(hours=1)
    await t.admin_caller.ok(ACTIVITY, deal=quiet["id"], at=clock().isoformat())
    clock.advance(days=2)
    await run_jobs(mail_settings, db, clock, t.id)
    assert len(smtp.handler.for_recipient(quiet_to)) == 1
    [e] = await enrollments(t.admin_caller, deal=quiet["id"])
    assert (e["status"], e["stopReason"]) == ("STOPPED", "ACTIVITY_LOGGED")
