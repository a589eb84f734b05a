"""Campaigns meet the contact and deal lifecycle: merging two records of one person leaves
every reference on the survivor and mails nobody twice; archiving a deal stops its
campaigns; an unsubscribe link mailed to the merged duplicate still works. Real arq worker,
real Redis, real SMTP on loopback."""

from __future__ import annotations

import httpx

from saas.campaigns.unsubscribe import url_for
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

STEPS = [{"delayDays": 1, "subject": "Thanks {{ contact.first_name }}", "body": "one"},
         {"delayDays": 3, "subject": "Still happy, {{ contact.first_name }}?", "body": "two"}]
MERGE = """mutation($input: MergeContactsInput!) { mergeContacts(input: $input) {
  contact { id name email phone version unsubscribed } errors { code field message } } }"""
DEAL = """query($id: ID!) { node(id: $id) { ... on Deal { version contact { id }
  activities { subject } history { kind changes { field from to } } } } }"""
ACTIVITY = """mutation($input: CreateActivityInput!) { createActivity(input: $input) {
  activity { id } errors { code } } }"""
NODE = "query($id: ID!) { node(id: $id) { id } }"


async def test_merging_two_records_of_one_person_moves_everything_and_mails_once(
    tenants: TenantFactory, mail_settings: Settings, db: Database, smtp: SmtpServer,
    clock: Clock, client: httpx.AsyncClient,
) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    campaign = await create_campaign(admin, name="Retention", trigger="DEAL_WON", steps=STEPS)
    ann = await contact(admin, "Ann Lee", "ann@client.test")
    dup = await contact(admin, "Ann Lee (import)", "ann.lee@client.test")
    await admin.ok('mutation($id: ID!) { updateContact(input: {contactId: $id, '
                   'expectedVersion: 1, phone: "+44 20 7946 0000"}) { errors { code } } }',
                   id=dup)
    deal_a = await create_deal(admin, pipeline["id"], "Fleet", contactId=ann)
    deal_b = await create_deal(admin, pipeline["id"], "Spares", contactId=dup)
    for deal in (deal_a, deal_b):
        await admin.ok(ACTIVITY, input={"dealId": deal["id"], "kind": "CALL",
                                        "subject": f"call about {deal['title']}"})
        assert (await move(admin, deal["id"], stages["Closing"], 1))["errors"] == []
    await run_jobs(mail_settings, db, clock, t.id)  # both deals enrolled, nothing due yet
    before = {d["id"]: await enrollments(admin, deal=d["id"]) for d in (deal_a, deal_b)}
    assert [len(v) for v in before.values()] == [1, 1]

    merged = (await admin.ok(MERGE, input={"survivorId": ann, "duplicateId": dup,
                                           "survivorVersion": 1, "duplicateVersion": 2}))
    result = merged["mergeContacts"]
    assert result["errors"] == []
    assert result["contact"] == {"id": ann, "name": "Ann Lee", "email": "ann@client.test",
                                 "phone": "+44 20 7946 0000", "version": 2,
                                 "unsubscribed": False}
    assert (await admin.ok(NODE, id=dup))["node"] is None
    moved = (await admin.ok(DEAL, id=deal_b["id"]))["node"]
    assert moved["contact"] == {"id": ann} and moved["version"] == 3
    assert moved["activities"] == [{"subject": "call about Spares"}]
    assert moved["history"][-1] == {"kind": "UPDATED", "changes": [
        {"field": "contactId", "from": dup, "to": ann}]}
    kept = (await admin.ok(DEAL, id=deal_a["id"]))["node"]
    assert kept["contact"] == {"id": ann} and kept["version"] == 2
    # Both enrollments now point at the survivor; one of them stops so Ann is mailed once.
    after = [e for d in (deal_a, deal_b) for e in await enrollments(admin, deal=d["id"])]
    assert sorted((e["status"], e["stopReason"]) for e in after) == [
        ("ACTIVE", None), ("STOPPED", "CONTACT_MERGED")]

    clock.advance(days=1, minutes=1)
    await run_jobs(mail_settings, db, clock, t.id)
    clock.advance(days=3, minutes=1)
    await run_jobs(mail_settings, db, clock, t.id)
    clock.advance(days=30)
    await run_jobs(mail_settings, db, clock, t.id)
    assert [(r.rcpt_tos, r.subject) for r in smtp.handler.received] == [
        (["ann@client.test"], "Thanks Ann"), (["ann@client.test"], "Still happy, Ann?")]
    assert campaign["id"]

    # A link mailed to the duplicate before the merge unsubscribes the person.
    link = url_for(mail_settings, t.id, raw(dup)).removeprefix(
        mail_settings.public_base_url.rstrip("/"))
    response = await client.get(link)
    assert response.status_code == 200, response.text
    survivor = (await admin.ok("query($id: ID!) { node(id: $id) { ... on Contact "
                               "{ unsubscribed } } }", id=ann))["node"]
    assert survivor == {"unsubscribed": True}


async def test_archiving_a_deal_stops_its_campaign_and_enrolls_it_in_nothing(
    tenants: TenantFactory, mail_settings: Settings, db: Database, smtp: SmtpServer,
    clock: Clock,
) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    await create_campaign(admin, name="Retention", trigger="DEAL_WON", steps=STEPS)
    ann = await contact(admin, "Ann Lee", "ann@client.test")
    running = await create_deal(admin, pipeline["id"], "Running", contactId=ann)
    late = await create_deal(admin, pipeline["id"], "Won, archived before the tick",
                             contactId=ann)
    await move(admin, running["id"], stages["Closing"], 1)
    await run_jobs(mail_settings, db, clock, t.id)
    await move(admin, late["id"], stages["Closing"], 1)
    for deal in (running, late):
        archived = await admin.ok('mutation($id: ID!) { archiveDeal(input: {dealId: $id}) '
                                  '{ errors { code } } }', id=deal["id"])
        assert archived["archiveDeal"]["errors"] == []
    clock.advance(days=10)
    await run_jobs(mail_settings, db, clock, t.id)
    clock.advance(days=10)
    await run_jobs(mail_settings, db, clock, t.id)
    [stopped] = await enrollments(admin, deal=running["id"])
    assert (stopped["status"], stopped["stopReason"], stopped["sends"]) == (
        "STOPPED", "DEAL_ARCHIVED", [])
    assert await enrollments(admin, deal=late["id"]) == []
    assert smtp.handler.received == []
