"""A won deal runs through a retention campaign: real arq worker, real Redis, real SMTP."""

from __future__ import annotations

from saas.db import Database
from saas.settings import Settings
from tests.campaigns.support import (
    Clock,
    SmtpServer,
    contact,
    create_campaign,
    enrollments,
    raw,
    run_jobs,
)
from tests.deals.ops import create_deal, default_pipeline, move, stage_ids
from tests.factories import TenantFactory

RETENTION_STEPS = [
    {"delayDays": 1, "subject": "Thanks, {{ contact.first_name }}!",
     "body": "Hi {{contact.name}},\n\nthanks for choosing us for {{ deal.title }} "
             "({{ deal.amount }} {{ deal.currency }}).\nYour manager: {{ owner.email }}\n"},
    {"delayDays": 7, "subject": "How is {{ deal.title }} going?",
     "body": "Hello again {{ contact.first_name }}, any questions? "
             "Unsubscribe: {{ unsubscribe_url }}"},
]


async def test_won_deal_gets_step_one_then_step_two_on_its_day(
    tenants: TenantFactory, mail_settings: Settings, db: Database, smtp: SmtpServer,
    clock: Clock,
) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    campaign = await create_campaign(admin, name="Retention", trigger="DEAL_WON",
                                     steps=RETENTION_STEPS)
    assert campaign["recipient"] == "CONTACT" and campaign["status"] == "ACTIVE"
    assert [s["delayMinutes"] for s in campaign["steps"]] == [1440, 7 * 1440]
    ann = await contact(admin, "Ann Lee", "ann@client.test")
    deal = await create_deal(admin, pipeline["id"], "Fleet renewal", amount="1500",
                             contactId=ann)
    other = await create_deal(admin, pipeline["id"], "Still open", contactId=ann)
    await move(admin, deal["id"], stages["Closing"], 1)
    # Won -> another won stage is not a second win.
    await move(admin, deal["id"], stages["Retention"], 2)

    await run_jobs(mail_settings, db, clock, t.id)  # enrolls; nothing due yet
    [e] = await enrollments(admin, deal=deal["id"])
    assert (e["status"], e["nextStep"], e["sends"], e["campaign"]["name"]) == (
        "ACTIVE", 0, [], "Retention")
    assert await enrollments(admin, deal=other["id"]) == []
    assert smtp.handler.received == []

    clock.advance(days=1, minutes=1)
    await run_jobs(mail_settings, db, clock, t.id)
    clock.advance(minutes=5)
    await run_jobs(mail_settings, db, clock, t.id)  # step 2 is not due for a week
    assert len(smtp.handler.received) == 1
    first = smtp.handler.received[0]
    assert first.rcpt_tos == ["ann@client.test"]
    assert first.subject == "Thanks, Ann!"
    assert first.body.startswith(
        f"Hi Ann Lee,\n\nthanks for choosing us for Fleet renewal (1500.00 USD).\n"
        f"Your manager: {t.admin_email}\n\n\n--\nTo stop receiving these emails: "
        f"{mail_settings.public_base_url}/unsubscribe/")
    assert first.mail_from == mail_settings.mail_default_sender
    enrollment_id = raw(e["id"])
    assert first.message["Message-ID"] == f"<campaign.{enrollment_id}.0@localhost>"
    assert first.message["List-Unsubscribe"].startswith(
        f"<{mail_settings.public_base_url}/unsubscribe/")

    clock.advance(days=7)
    await run_jobs(mail_settings, db, clock, t.id)
    clock.advance(days=30)
    await run_jobs(mail_settings, db, clock, t.id)

    assert [r.subject for r in smtp.handler.received] == [
        "Thanks, Ann!", "How is Fleet renewal going?"]
    second = smtp.handler.received[1]
    assert second.body.startswith("Hello again Ann, any questions? Unsubscribe: "
                                  f"{mail_settings.public_base_url}/unsubscribe/")
    assert "To stop receiving" not in second.body  # the template placed the link itself
    [done] = await enrollments(admin, campaign=campaign["id"])
    assert (done["status"], done["nextStep"], done["nextDueAt"]) == ("COMPLETED", 2, None)
    assert [(s["step"], s["status"], s["attempts"], s["recipient"]) for s in done["sends"]] == [
        (0, "SENT", 1, "ann@client.test"), (1, "SENT", 1, "ann@client.test")]
