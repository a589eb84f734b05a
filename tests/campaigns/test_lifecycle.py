"""A campaign's end: archive (enrollments stop, it leaves the list, resume is refused) and
delete (only when it never sent anything). Real worker, Redis and SMTP."""

from __future__ import annotations

import asyncpg

from saas.db import Database
from saas.settings import Settings
from tests.campaigns.support import (
    RESUME,
    Clock,
    SmtpServer,
    contact,
    create_campaign,
    enrollments,
    run_jobs,
)
from tests.deals.ops import create_deal, default_pipeline
from tests.factories import TenantFactory, all_tables_snapshot

STEPS = [{"delayDays": 1, "subject": "Hi", "body": "one"},
         {"delayDays": 2, "subject": "Again", "body": "two"}]
ARCHIVE = """mutation($id: ID!) { archiveCampaign(input: {campaignId: $id}) {
  campaign { id status } errors { code field message } } }"""
DELETE = """mutation($id: ID!) { deleteCampaign(input: {campaignId: $id}) {
  deletedId errors { code field message } } }"""
LIST = "query { campaigns { id } }"


async def test_archive_stops_a_campaign_for_good_and_delete_needs_no_messages(
    tenants: TenantFactory, mail_settings: Settings, db: Database, smtp: SmtpServer,
    clock: Clock, owner_conn: asyncpg.Connection,
) -> None:
    t, other = await tenants.create(), await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    sent = await create_campaign(admin, name="Welcome", trigger="DEAL_CREATED", steps=STEPS)
    ann = await contact(admin, "Ann", "ann@client.test")
    deal = await create_deal(admin, pipeline["id"], "D", contactId=ann)
    await run_jobs(mail_settings, db, clock, t.id)
    clock.advance(days=1, minutes=1)
    await run_jobs(mail_settings, db, clock, t.id)
    assert [r.subject for r in smtp.handler.received] == ["Hi"]
    # A second campaign enrolls a new deal but has sent nothing yet (its first step is due
    # in a week): it may be deleted, with its enrollment.
    draft = await create_campaign(admin, name="Draft", trigger="DEAL_CREATED", steps=[
        {"delayDays": 7, "subject": "Later", "body": "x"}])
    late = await create_deal(admin, pipeline["id"], "E", contactId=ann)
    await run_jobs(mail_settings, db, clock, t.id)
    assert len(await enrollments(admin, deal=late["id"], campaign=draft["id"])) == 1

    mailed = len(smtp.handler.received)
    before = await all_tables_snapshot(owner_conn, t.id)
    refused = (await admin.ok(DELETE, id=sent["id"]))["deleteCampaign"]
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("CONFLICT", "campaignId")]
    assert "archive it instead" in refused["errors"][0]["message"]
    foreign = (await other.admin_caller.ok(DELETE, id=draft["id"]))["deleteCampaign"]
    assert [e["code"] for e in foreign["errors"]] == ["NOT_FOUND"]
    assert await all_tables_snapshot(owner_conn, t.id) == before

    archived = (await admin.ok(ARCHIVE, id=sent["id"]))["archiveCampaign"]
    assert archived["campaign"] == {"id": sent["id"], "status": "ARCHIVED"}
    again = (await admin.ok(ARCHIVE, id=sent["id"]))["archiveCampaign"]
    assert [e["code"] for e in again["errors"]] == ["CONFLICT"]
    resumed = (await admin.ok(RESUME, id=sent["id"]))["resumeCampaign"]
    assert [e["code"] for e in resumed["errors"]] == ["CONFLICT"]
    [e] = await enrollments(admin, deal=deal["id"], campaign=sent["id"])
    assert (await enrollments(admin, deal=late["id"], campaign=sent["id"]))[0]["status"] == \
        "STOPPED"
    assert (e["status"], e["stopReason"], len(e["sends"])) == ("STOPPED", "CAMPAIGN_PAUSED", 1)

    deleted = (await admin.ok(DELETE, id=draft["id"]))["deleteCampaign"]
    assert deleted == {"deletedId": draft["id"], "errors": []}
    assert (await admin.ok(LIST))["campaigns"] == []
    assert await enrollments(admin, deal=late["id"]) != []  # Welcome's, stopped
    assert await enrollments(admin, campaign=draft["id"]) == []
    clock.advance(days=5)
    await run_jobs(mail_settings, db, clock, t.id)
    assert len(smtp.handler.received) == mailed  # nothing more since the archive
