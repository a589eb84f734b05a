"""Erasure and export of a person's data: after eraseContact no table holds the person's
name, e-mail or phone in any text, jsonb or array column, and funnel and conversion figures
are what they were; export returns everything first. Both audited; failures write nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from strawberry.relay import GlobalID

from saas.campaigns.unsubscribe import url_for
from saas.db import Database
from saas.settings import Settings
from tenants.principal import Role
from tests.campaigns.support import Clock, SmtpServer, contact, create_campaign, raw, run_jobs
from tests.deals.ops import create_deal, default_pipeline, move, stage_ids
from tests.factories import TenantFactory, all_tables_snapshot

NAME, EMAIL, PHONE = "Zelda Quixote", "zelda.quixote@example.test", "+44 20 7946 0123"
OTHER = ("Zelda Smith", "zelda.smith@example.test")
ERASE = """mutation($id: ID!) { eraseContact(input: {contactId: $id}) {
  erasedContactId dealsUnlinked messagesRedacted valuesRedacted errors { code field message } } }"""
EXPORT = "query($id: ID!) { exportPersonalData(contactId: $id) { contactId exportedAt data } }"
ANALYTICS = """query($p: ID!, $f: DateTime!, $t: DateTime!) {
  pipelineAnalytics(pipelineId: $p, period: {from: $f, to: $t}) {
    funnel { name count amounts { currency amount } } conversion { name reached advanced rate }
    outcomes { won lost winRate } } }"""
UPDATE = """mutation($input: UpdateDealInput!) { updateDeal(input: $input) { errors { code } } }"""
ACTIVITY = """mutation($input: CreateActivityInput!) { createActivity(input: $input) {
  errors { code } } }"""
FIELD = """mutation { defineCustomField(input: {key: "referrer", label: "Referrer",
  type: "text"}) { errors { code } } }"""
DEAL = """query($id: ID!) { node(id: $id) { ... on Deal { title contact { id } labels
  customFields activities { subject note } } } }"""


async def grep_everywhere(owner_conn: asyncpg.Connection, *terms: str) -> list[str]:
    """Every (table.column) of the database whose text, jsonb, json, char or array value
    contains one of `terms` (case-insensitive), read as the owner (no RLS)."""
    columns = await owner_conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND (data_type IN ('text', 'character varying', "
        "'character', 'jsonb', 'json', 'ARRAY', 'USER-DEFINED', 'bytea'))")
    hits = []
    for c in columns:
        for term in terms:
            if c["data_type"] == "bytea":  # stored files and responses: the UTF-8 bytes
                condition = (f'position(convert_to($1, \'UTF8\') IN "{c["column_name"]}") > 0 '
                             f'OR position(convert_to(lower($1), \'UTF8\') '
                             f'IN "{c["column_name"]}") > 0')
            else:
                condition = f'"{c["column_name"]}"::text ILIKE \'%\' || $1 || \'%\''
            n = await owner_conn.fetchval(
                f'SELECT count(*) FROM "{c["table_name"]}" WHERE {condition}', term)
            if n:
                hits.append(f"{c['table_name']}.{c['column_name']} ({term}): {n}")
    return hits


async def _analytics(caller: Any, pipeline_id: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    data = await caller.ok(ANALYTICS, p=pipeline_id, f=(now - timedelta(days=1)).isoformat(),
                           t=(now + timedelta(days=1)).isoformat())
    return data["pipelineAnalytics"]  # type: ignore[no-any-return]


async def test_erasure_leaves_no_trace_and_keeps_the_figures(
    tenants: TenantFactory, mail_settings: Settings, db: Database, smtp: SmtpServer,
    clock: Clock, client: httpx.AsyncClient, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    await admin.ok(FIELD)
    await create_campaign(admin, name="Welcome", trigger="DEAL_CREATED", steps=[
        {"delayDays": 1, "subject": "Hello {{ contact.name }}",
         "body": "Dear {{ contact.name }}, we will call {{ contact.phone }}."}])
    zelda = await contact(admin, NAME, EMAIL)
    await admin.ok('mutation($id: ID!, $p: String!) { updateContact(input: {contactId: $id, '
                   'expectedVersion: 1, phone: $p}) { errors { code } } }', id=zelda, p=PHONE)
    other = await contact(admin, *OTHER)
    deal = await create_deal(admin, pipeline["id"], f"{NAME} renewal", amount="500",
                             contactId=zelda, labels=["zelda quixote", "vip"],
                             customFields={"referrer": f"met via {EMAIL}"})
    kept = await create_deal(admin, pipeline["id"], f"{OTHER[0]} pilot", amount="300",
                             contactId=other)
    await run_jobs(mail_settings, db, clock, t.id)
    clock.advance(days=2)
    await run_jobs(mail_settings, db, clock, t.id)
    assert sorted(r.rcpt_tos[0] for r in smtp.handler.received) == sorted([EMAIL, OTHER[1]])
    await admin.ok(UPDATE, input={"dealId": deal["id"], "expectedVersion": 1,
                                  "title": f"{NAME} renewal 2027"})
    lost = await move(admin, deal["id"], stages["Lost"], 2, reason=f"{NAME} chose a rival")
    assert lost["errors"] == []
    assert (await move(admin, deal["id"], stages["Proposal"], 3))["errors"] == []
    await admin.ok(ACTIVITY, input={"dealId": deal["id"], "kind": "CALL",
                                    "subject": f"Call {NAME}",
                                    "note": f"{NAME} ({PHONE}) asked for a discount; "
                                            f"mail {EMAIL}. Zelda's colleague joins."})
    # An idempotent request keeps its response (with the person's phone) for replays.
    replay = await client.post("/graphql", json={
        "query": "mutation($id: ID!, $p: String!) { updateContact(input: {contactId: $id, "
                 "expectedVersion: 2, phone: $p}) { contact { name email phone } } }",
        "variables": {"id": zelda, "p": PHONE}},
        headers={**admin.headers, "Idempotency-Key": '"k-1"'})
    assert PHONE in replay.text
    link = url_for(mail_settings, t.id, raw(zelda)).removeprefix(

        mail_settings.public_base_url.rstrip("/"))
    assert (await client.get(link)).status_code == 200
    assert await grep_everywhere(owner_conn, NAME, EMAIL, PHONE) != []  # it was there

    exported = (await admin.ok(EXPORT, id=zelda))["exportPersonalData"]
    data = exported["data"]
    assert (data["contact"]["name"], data["contact"]["email"], data["contact"]["phone"]) == (
        NAME, EMAIL, PHONE)
    assert data["contact"]["unsubscribed_at"] is not None
    assert [d["title"] for d in data["deals"]] == [f"{NAME} renewal 2027"]
    assert [h["kind"] for h in data["deals"][0]["history"]] == [
        "created", "updated", "lost", "reopened"]
    assert [a["subject"] for a in data["deals"][0]["activities"]] == [f"Call {NAME}"]
    assert [(m["recipient"], m["subject"]) for m in data["campaign_messages"]] == [
        (EMAIL, f"Hello {NAME}")]
    assert [e["campaign_name"] for e in data["campaign_enrollments"]] == ["Welcome"]
    figures = await _analytics(admin, pipeline["id"])

    stored = await owner_conn.fetchval(
        "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1 "
        "AND position(convert_to($2, 'UTF8') IN response) > 0", t.id, PHONE)
    assert stored == 1
    erased = (await admin.ok(ERASE, id=zelda))["eraseContact"]
    assert erased["errors"] == [] and erased["erasedContactId"] == zelda
    assert (erased["dealsUnlinked"], erased["messagesRedacted"]) == (1, 1)
    assert erased["valuesRedacted"] > 0

    assert await grep_everywhere(owner_conn, NAME, EMAIL, PHONE) == []
    assert await _analytics(admin, pipeline["id"]) == figures
    node = (await admin.ok(DEAL, id=deal["id"]))["node"]
    assert node == {"title": "[erased] renewal 2027", "contact": None,
                    "labels": ["vip", "[erased]"],
                    "customFields": {"referrer": "met via [erased]"},
                    "activities": [{"subject": "Call [erased]",
                                    "note": "[erased] ([erased]) asked for a discount; "
                                            "mail [erased]. Zelda's colleague joins."}]}
    # Another person with a similar name keeps everything.
    assert (await admin.ok(DEAL, id=kept["id"]))["node"]["title"] == f"{OTHER[0]} pilot"
    assert len(await grep_everywhere(owner_conn, *OTHER)) >= 3
    body = await admin.gql(EXPORT, id=zelda)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]
    audit = await owner_conn.fetch(
        "SELECT action, target_id, details::text AS details FROM audit_events "
        "WHERE tenant_id = $1 AND action LIKE 'personal_data.%' ORDER BY occurred_at", t.id)
    assert [(r["action"], r["target_id"]) for r in audit] == [
        ("personal_data.exported", raw(zelda)), ("personal_data.erased", raw(zelda))]


async def test_erasure_failures_are_typed_and_write_nothing(
        tenants: TenantFactory, owner_conn: asyncpg.Connection) -> None:
    a, b = await tenants.create(), await tenants.create()
    zelda = await contact(a.admin_caller, NAME, EMAIL)
    theirs = await contact(b.admin_caller, NAME, EMAIL)
    manager = a.as_user(await a.add_user(Role.MANAGER))
    unknown = str(GlobalID("Contact", "00000000-0000-0000-0000-000000000001"))
    before = (await all_tables_snapshot(owner_conn, a.id),
              await all_tables_snapshot(owner_conn, b.id))
    for name, caller, contact_id, code in [
        ("unknown", a.admin_caller, unknown, "NOT_FOUND"),
        ("other tenant's", a.admin_caller, theirs, "NOT_FOUND"),
        ("a deal's id", a.admin_caller, str(GlobalID("Deal", str(raw(zelda)))), "NOT_FOUND"),
        ("manager", manager, zelda, "FORBIDDEN"),
    ]:
        result = (await caller.ok(ERASE, id=contact_id))["eraseContact"]
        assert [e["code"] for e in result["errors"]] == [code], name
        body = await caller.gql(EXPORT, id=contact_id)
        assert [e["extensions"]["code"] for e in body["errors"]] == [code], name
        after = (await all_tables_snapshot(owner_conn, a.id),
                 await all_tables_snapshot(owner_conn, b.id))
        assert after == before, f"{name} changed the database"
