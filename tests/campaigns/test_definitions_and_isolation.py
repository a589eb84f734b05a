"""Campaign CRUD through GraphQL, bad definitions that save nothing, tenant isolation."""

from __future__ import annotations

from typing import Any

import asyncpg

from saas.db import Database
from saas.settings import Settings
from tenants.principal import Role
from tests.campaigns.support import (
    CREATE,
    ENROLLMENTS,
    PAUSE,
    REPLIED,
    RESUME,
    UPDATE,
    Clock,
    SmtpServer,
    contact,
    create_campaign,
    enrollments,
    full_snapshot,
    run_jobs,
)
from tests.deals.ops import create_deal, default_pipeline, move, stage_ids
from tests.factories import TenantFactory

STEP = {"delayDays": 1, "subject": "Hi {{ contact.name }}", "body": "About {{ deal.title }}"}
GET = """query($id: ID!) { campaign(id: $id) { id name status }
  node(id: $id) { ... on Campaign { id name } } }"""


async def test_create_update_pause_resume_list_and_get(tenants: TenantFactory) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    segment = (await admin.ok("{ segments { id } }"))["segments"][0]["id"]
    c = await create_campaign(
        admin, name="Win-back", trigger="DEAL_LOST", steps=[STEP], segmentIds=[segment],
        stageIds=[stages["Lost"]], labels=["vip", " vip "], temperatures=["hot"])
    assert (c["trigger"], c["recipient"], c["labels"], c["temperatures"], c["version"]) == (
        "DEAL_LOST", "CONTACT", ["vip"], ["hot"], 1)
    assert c["segmentIds"] == [segment] and c["stageIds"] == [stages["Lost"]]

    updated = (await admin.ok(UPDATE, input={
        "campaignId": c["id"], "expectedVersion": 1, "name": "Win-back v2",
        "steps": [STEP, {"delayHours": 5, "subject": "Again", "body": "{{ owner.name }}"}]}
    ))["updateCampaign"]
    stale = (await admin.ok(UPDATE, input={"campaignId": c["id"], "expectedVersion": 1,
                                           "name": "x"}))["updateCampaign"]
    paused = (await admin.ok(PAUSE, id=c["id"]))["pauseCampaign"]["campaign"]
    resumed = (await admin.ok(RESUME, id=c["id"]))["resumeCampaign"]["campaign"]
    listed = (await admin.ok("{ campaigns { name status steps { delayMinutes } } }"))["campaigns"]
    got = await admin.ok(GET, id=c["id"])

    assert updated["errors"] == [] and updated["campaign"]["version"] == 2
    assert [s["delayMinutes"] for s in updated["campaign"]["steps"]] == [1440, 300]
    assert stale["errors"][0]["code"] == "VERSION_CONFLICT"
    assert (paused["status"], resumed["status"]) == ("PAUSED", "ACTIVE")
    assert listed == [{"name": "Win-back v2", "status": "ACTIVE",
                       "steps": [{"delayMinutes": 1440}, {"delayMinutes": 300}]}]
    assert got["campaign"]["name"] == got["node"]["name"] == "Win-back v2"

    rep = t.as_user(await t.add_user(Role.REP))
    denied = (await rep.ok(CREATE, input={"name": "r", "trigger": "DEAL_WON", "steps": [STEP]})
              )["createCampaign"]
    assert denied["errors"][0]["code"] == "FORBIDDEN"


async def test_bad_definitions_get_typed_errors_and_save_nothing(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    other = await tenants.create()
    admin = t.admin_caller
    await create_campaign(admin, name="Taken", trigger="DEAL_WON", steps=[STEP])
    other_segment = (await other.admin_caller.ok("{ segments { id } }"))["segments"][0]["id"]
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    base: dict[str, Any] = {"name": "New", "trigger": "DEAL_WON", "steps": [STEP]}
    cases = [
        ({"steps": [{**STEP, "body": "Hi {{ deal.secret }}"}]}, "VALIDATION_FAILED",
         "steps.0.body"),
        ({"steps": [STEP, {**STEP, "subject": "{{ contact.nam }}"}]}, "VALIDATION_FAILED",
         "steps.1.subject"),
        ({"steps": [{**STEP, "body": "Hi {{ deal.title }"}]}, "VALIDATION_FAILED",
         "steps.0.body"),
        ({"steps": [{**STEP, "delayDays": -1}]}, "VALIDATION_FAILED", "steps.0.delay"),
        ({"steps": [{**STEP, "delayMinutes": -5}]}, "VALIDATION_FAILED", "steps.0.delay"),
        ({"steps": []}, "VALIDATION_FAILED", "steps"),
        ({"segmentIds": [other_segment]}, "NOT_FOUND", "segmentIds"),
        ({"segmentIds": ["not-an-id"]}, "NOT_FOUND", "segmentIds"),
        ({"stageIds": [stages["Proposal"]]}, "VALIDATION_FAILED", "stageIds"),
        ({"triggerDays": 3}, "VALIDATION_FAILED", "triggerDays"),
        ({"trigger": "NO_ACTIVITY"}, "VALIDATION_FAILED", "triggerDays"),
        ({"recipient": "OWNER", "steps": [{**STEP, "body": "{{ unsubscribe_url }}"}]},
         "VALIDATION_FAILED", "steps.0.body"),
        ({"temperatures": ["lukewarm"]}, "VALIDATION_FAILED", "temperatures"),
        ({"name": "Taken"}, "CONFLICT", "name"),
        ({"name": "  "}, "VALIDATION_FAILED", "name"),
    ]
    before = await full_snapshot(owner_conn, t.id)
    for change, code, field in cases:
        data = await admin.ok(CREATE, input={**base, **change})
        result = data["createCampaign"]
        assert result["campaign"] is None, change
        assert [(e["code"], e["field"]) for e in result["errors"]] == [(code, field)], change
    [existing] = (await admin.ok("{ campaigns { id } }"))["campaigns"]
    bad_update = (await admin.ok(UPDATE, input={
        "campaignId": existing["id"], "steps": [{**STEP, "body": "{{ owner.salary }}"}]}
    ))["updateCampaign"]
    assert [e["field"] for e in bad_update["errors"]] == ["steps.0.body"]
    assert await full_snapshot(owner_conn, t.id) == before


async def test_campaigns_enrollments_and_sends_are_tenant_isolated(
    tenants: TenantFactory, mail_settings: Settings, db: Database, smtp: SmtpServer,
    clock: Clock, owner_conn: asyncpg.Connection,
) -> None:
    a = await tenants.create()
    b = await tenants.create()
    pipeline = await default_pipeline(a.admin_caller)
    stages = stage_ids(pipeline)
    campaign = await create_campaign(a.admin_caller, name="A only", trigger="DEAL_WON",
                                     steps=[{**STEP, "delayDays": 0}])
    c = await contact(a.admin_caller, "Ann", f"ann@{a.slug}.test")
    deal = await create_deal(a.admin_caller, pipeline["id"], "A deal", contactId=c)
    await move(a.admin_caller, deal["id"], stages["Closing"], 1)
    clock.advance(minutes=1)
    b_before = await full_snapshot(owner_conn, b.id)
    # B's job runs first and must neither see nor send A's campaign.
    await run_jobs(mail_settings, db, clock, b.id)
    assert smtp.handler.received == []
    await run_jobs(mail_settings, db, clock, a.id)
    assert len(smtp.handler.for_recipient(f"ann@{a.slug}.test")) == 1

    bc = b.admin_caller
    got = await bc.ok(GET, id=campaign["id"])
    assert got == {"campaign": None, "node": None}
    assert (await bc.ok("{ campaigns { id } }"))["campaigns"] == []
    assert await enrollments(bc) == []
    assert await enrollments(bc, campaign=campaign["id"]) == []
    assert (await bc.ok(ENROLLMENTS, deal=deal["id"], campaign=None))["campaignEnrollments"] == []
    for op, variables in ((PAUSE, {"id": campaign["id"]}), (RESUME, {"id": campaign["id"]})):
        result = next(iter((await bc.ok(op, **variables)).values()))
        assert [e["code"] for e in result["errors"]] == ["NOT_FOUND"]
    update = (await bc.ok(UPDATE, input={"campaignId": campaign["id"], "name": "hijack"})
              )["updateCampaign"]
    replied = (await bc.ok(REPLIED, deal=deal["id"]))["markReplied"]
    assert [e["code"] for e in update["errors"]] == ["NOT_FOUND"]
    assert [e["code"] for e in replied["errors"]] == ["NOT_FOUND"]
    assert await full_snapshot(owner_conn, b.id) == b_before
    [e] = await enrollments(a.admin_caller, deal=deal["id"])
    assert e["status"] == "COMPLETED" and e["sends"][0]["status"] == "SENT"
