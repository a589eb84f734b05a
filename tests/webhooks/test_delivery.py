"""Webhook delivery to a real HTTP receiver on loopback, with the real delivery worker."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid

import asyncpg
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from saas.db import Database
from saas.settings import Settings
from saas.webhooks.runner import Runner
from tests.deals.ops import CREATE_SEGMENT, create_deal, default_pipeline, move, stage_ids
from tests.factories import TenantFactory
from tests.webhooks.support import (
    DELIVERIES,
    ENDPOINTS,
    Receiver,
    create_endpoint,
    first_arrivals,
    verify,
    wait_for,
)

UPDATE = """mutation($id: ID!, $v: Int!, $title: String, $amount: Decimal) {
  updateDeal(input: {dealId: $id, expectedVersion: $v, title: $title, amount: $amount}) {
    deal { version } errors { code message } } }"""
TRANSFER = """mutation($id: ID!, $v: Int!, $p: ID!) {
  transferDeal(input: {dealId: $id, expectedVersion: $v, toPipelineId: $p}) {
    deal { version } errors { code message } } }"""
COMPANY = """mutation { createCompany(input: {name: "Acme", domain: "acme.test"}) {
  company { id } errors { code } } }"""
CONTACT = """mutation($c: ID) { createContact(input: {name: "Ann", email: "ann@acme.test",
  companyId: $c}) { contact { id } errors { code } } }"""


def raw(gid: str) -> str:
    return base64.b64decode(gid).decode().split(":", 1)[1]


async def test_every_event_type_is_delivered_signed_and_verifies(
    hook_tenants: TenantFactory, runner: Runner, receiver: Receiver,
) -> None:
    t = await hook_tenants.create()
    admin = t.admin_caller
    endpoint, secret = await create_endpoint(admin, receiver.url, ["*"])
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    company = (await admin.ok(COMPANY))["createCompany"]["company"]["id"]
    await admin.ok(CONTACT, c=company)
    deal = await create_deal(admin, pipeline["id"], "Big one", amount="100")
    updated = (await admin.ok(UPDATE, id=deal["id"], v=1, title="Bigger one", amount="250.00"))
    assert updated["updateDeal"]["errors"] == []
    v = 2
    for to, reason in (("Proposal", None), ("Closing", None), ("Negotiation", None),
                       ("Lost", "budget"), ("Proposal", None)):
        result = await move(admin, deal["id"], stages[to], v, reason)
        assert result["errors"] == [], result
        v = result["deal"]["version"]
    other = (await admin.ok(CREATE_SEGMENT, name="Enterprise", stages=None)
             )["createSegment"]["segment"]["pipeline"]
    moved = await admin.ok(TRANSFER, id=deal["id"], v=v, p=other["id"])
    assert moved["transferDeal"]["errors"] == []
    expected = ["company.created", "contact.created", "deal.created", "deal.updated",
                "deal.moved", "deal.won", "deal.reopened", "deal.lost", "deal.reopened",
                "deal.transferred"]
    await wait_for(lambda: len(receiver.ids()) >= len(expected), 20, "every event")
    arrivals = first_arrivals(receiver.snapshot())
    payloads = [verify(secret, r) for r in arrivals]
    by_seq = sorted(payloads, key=lambda p: p["data"]["seq"])
    assert [p["type"] for p in by_seq] == expected
    seqs = [p["data"]["seq"] for p in by_seq]
    assert seqs == sorted(set(seqs)) and len(seqs) == len(expected)
    for p in by_seq:
        assert raw(p["data"]["tenantId"]) == str(t.id)
        assert p["timestamp"].endswith("Z")
    # Every attempt carries the Standard Webhooks headers; a tampered body does not verify.
    first = arrivals[0]
    assert first.headers["webhook-id"].startswith("msg_")
    assert first.headers["content-type"] == "application/json"
    try:
        Webhook(secret).verify(first.body + b" ", first.headers)
        raise AssertionError("a tampered body verified")
    except WebhookVerificationError:
        pass
    types = {p["type"]: p for p in by_seq}
    created = types["deal.created"]["data"]
    assert created["deal"]["id"] == deal["id"]
    assert created["stage"]["name"] == "Lead generation" and "previousStage" not in created
    change = types["deal.updated"]["data"]["changes"]
    assert change == {"title": {"from": "Big one", "to": "Bigger one"},
                      "amount": {"from": "100.00", "to": "250.00"}}
    moved_event = types["deal.moved"]["data"]
    assert (moved_event["previousStage"]["name"], moved_event["stage"]["name"]) == (
        "Lead generation", "Proposal")
    assert moved_event["previousStage"]["id"] == stages["Lead generation"]
    assert types["deal.won"]["data"]["stage"] == {"id": stages["Closing"], "name": "Closing",
                                                  "kind": "won"}
    assert types["deal.lost"]["data"]["lostReason"] == "budget"
    transferred = types["deal.transferred"]["data"]
    assert transferred["previousPipelineId"] == pipeline["id"]
    assert transferred["deal"]["pipelineId"] == other["id"]
    assert types["contact.created"]["data"]["contact"]["companyId"] == company
    assert types["company.created"]["data"]["company"]["domain"] == "acme.test"
    # The delivery log shows each one delivered once, with its status code and latency.
    log = (await admin.ok(DELIVERIES, e=endpoint["id"], first=50))["webhookDeliveries"]
    assert sorted(d["seq"] for d in log["deliveries"]) == seqs
    assert {d["status"] for d in log["deliveries"]} == {"DELIVERED"}
    assert {d["webhookId"] for d in log["deliveries"]} == receiver.ids()
    assert all(d["log"][-1]["statusCode"] == 204 and d["log"][-1]["latencyMs"] >= 0
               for d in log["deliveries"])


async def test_forecast_completed_is_delivered(
    hook_tenants: TenantFactory, runner: Runner, receiver: Receiver, db: Database,
    hook_settings: Settings,
) -> None:
    from tests.forecasting.test_jobs import REQUEST, run_burst_worker

    t = await hook_tenants.create()
    admin = t.admin_caller
    _, secret = await create_endpoint(admin, receiver.url, ["forecast.completed"])
    pipeline = await default_pipeline(admin)
    await create_deal(admin, pipeline["id"], "x", amount="10")
    forecast = (await admin.ok(REQUEST, p=pipeline["id"], h=1))["requestForecast"]["forecast"]
    await run_burst_worker(hook_settings, db)
    await wait_for(lambda: len(receiver.ids()) == 1, 20, "forecast.completed")
    payload = verify(secret, receiver.snapshot()[0])
    assert payload["type"] == "forecast.completed"
    assert payload["data"]["forecast"]["id"] == forecast["id"]
    assert payload["data"]["forecast"]["pipelineId"] == pipeline["id"]


async def test_import_completed_is_delivered(
    hook_tenants: TenantFactory, runner: Runner, receiver: Receiver, db: Database,
    hook_settings: Settings,
) -> None:
    from tests.imports.support import DEAL_COLUMNS, run_jobs, start, to_csv, upload

    t = await hook_tenants.create()
    admin = t.admin_caller
    _, secret = await create_endpoint(admin, receiver.url, ["import.completed"])
    blank = [""] * (len(DEAL_COLUMNS) - 1)
    uploaded = await upload(admin, to_csv(DEAL_COLUMNS, [
        ["first", *blank], ["second", *blank], ["third", "abc", *blank[1:]]]))  # bad amount
    await start(admin, uploaded["id"])
    await run_jobs(hook_settings, db)
    await wait_for(lambda: len(receiver.ids()) == 1, 20, "import.completed")
    payload = verify(secret, receiver.snapshot()[0])
    assert payload["type"] == "import.completed"
    assert payload["data"]["import"] == {"id": uploaded["id"], "kind": "deals", "totalRows": 3,
                                         "rowsFailed": 1, "objectsCreated": 2}


async def test_receiver_down_then_back_gets_everything_once_in_order_per_deal(
    hook_tenants: TenantFactory, runner: Runner, receiver: Receiver,
    owner_conn: asyncpg.Connection,
) -> None:
    t = await hook_tenants.create()
    admin = t.admin_caller
    endpoint, secret = await create_endpoint(admin, receiver.url, ["deal.*"])
    pipeline = await default_pipeline(admin)
    names = [s["name"] for s in pipeline["stages"] if s["kind"] == "OPEN"]
    stages = stage_ids(pipeline)
    receiver.stop()  # connection refused from now on
    deals = [await create_deal(admin, pipeline["id"], f"deal {i}") for i in range(4)]
    for round_ in range(1, 4):
        for d in deals:
            result = await move(admin, d["id"], stages[names[round_]], round_)
            assert result["errors"] == [], result
    events = 4 + 4 * 3
    # The worker tries and fails while the receiver is down (several retries each)...
    assert await _wait_failed(owner_conn, t.id, at_least=8) >= 8
    assert receiver.ids() == set()
    receiver.start()  # ...and everything arrives once it is back.
    await wait_for(lambda: len(receiver.ids()) == events, 30, "the backlog")
    arrivals = first_arrivals(receiver.snapshot())
    payloads = [verify(secret, r) for r in arrivals]
    assert len({r.id for r in arrivals}) == events
    seqs = sorted(p["data"]["seq"] for p in payloads)
    assert seqs == list(range(seqs[0], seqs[0] + events))  # every event, none twice
    per_deal: dict[str, list[int]] = {}
    for p in payloads:
        per_deal.setdefault(p["data"]["deal"]["id"], []).append(p["data"]["seq"])
    assert set(per_deal) == {d["id"] for d in deals}
    for seqs in per_deal.values():
        assert seqs == sorted(seqs) and len(seqs) == 4
    assert await statuses(owner_conn, t.id, {"delivered": events}) == {"delivered": events}
    endpoints = (await admin.ok(ENDPOINTS))["webhookEndpoints"]
    assert endpoints[0]["status"] == "ACTIVE" and endpoints[0]["failingSince"] is None
    assert endpoint["id"] == endpoints[0]["id"]


async def _wait_failed(owner_conn: asyncpg.Connection, tenant_id: uuid.UUID,
                       at_least: int) -> int:
    deadline = time.monotonic() + 20
    n = 0
    while time.monotonic() < deadline:
        n = await owner_conn.fetchval(
            "SELECT count(*) FROM webhook_attempts WHERE tenant_id = $1 AND error IS NOT NULL",
            tenant_id)
        if n >= at_least:
            return int(n)
        await asyncio.sleep(0.1)
    return int(n)



async def statuses(owner_conn: asyncpg.Connection, tenant_id: uuid.UUID,
                   expected: dict[str, int], seconds: float = 10) -> dict[str, int]:
    """Deliveries per status, once they are `expected` (the receiver answers before the
    worker records the outcome) or when time is up."""
    deadline = time.monotonic() + seconds
    while True:
        rows = await owner_conn.fetch(
            "SELECT status, count(*) AS n FROM webhook_deliveries WHERE tenant_id = $1 "
            "GROUP BY status", tenant_id)
        found = {r["status"]: r["n"] for r in rows}
        if found == expected or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_lifecycle_events_of_deals_contacts_and_companies_are_delivered(
    hook_tenants: TenantFactory, runner: Runner, receiver: Receiver,
) -> None:
    t = await hook_tenants.create()
    admin = t.admin_caller
    _, secret = await create_endpoint(admin, receiver.url, ["*"])
    company = (await admin.ok(COMPANY))["createCompany"]["company"]["id"]
    contact = (await admin.ok(CONTACT, c=company))["createContact"]["contact"]["id"]
    changed = await admin.ok("""mutation($id: ID!) { updateContact(input: {contactId: $id,
        expectedVersion: 1, name: "Ann B"}) { errors { code message } } }""", id=contact)
    assert changed["updateContact"]["errors"] == []
    renamed = await admin.ok("""mutation($id: ID!) { updateCompany(input: {companyId: $id,
        expectedVersion: 1, name: "Acme Ltd"}) { errors { code message } } }""", id=company)
    assert renamed["updateCompany"]["errors"] == []
    gone = await admin.ok("""mutation($id: ID!) { deleteContact(input: {contactId: $id}) {
        errors { code message } } }""", id=contact)
    assert gone["deleteContact"]["errors"] == []
    pipeline = await default_pipeline(admin)
    deal = await create_deal(admin, pipeline["id"], "short-lived")
    archived = await admin.ok("""mutation($id: ID!) { archiveDeal(input: {dealId: $id}) {
        errors { code message } } }""", id=deal["id"])
    assert archived["archiveDeal"]["errors"] == []
    restored = await admin.ok("""mutation($id: ID!) { restoreDeal(input: {dealId: $id}) {
        errors { code message } } }""", id=deal["id"])
    assert restored["restoreDeal"]["errors"] == []
    expected = ["company.created", "contact.created", "contact.updated", "company.updated",
                "contact.deleted", "deal.created", "deal.deleted", "deal.restored"]
    await wait_for(lambda: len(receiver.ids()) >= len(expected), 20, "every event")
    payloads = sorted((verify(secret, r) for r in first_arrivals(receiver.snapshot())),
                      key=lambda p: p["data"]["seq"])
    assert [p["type"] for p in payloads] == expected
    by_type = {p["type"]: p["data"] for p in payloads}
    assert by_type["contact.updated"]["contact"]["name"] == "Ann B"
    assert by_type["contact.updated"]["changed"] == ["name"]
    assert by_type["company.updated"]["company"]["name"] == "Acme Ltd"
    assert by_type["contact.deleted"]["contact"] == {"id": contact}
    assert by_type["deal.deleted"]["deal"]["id"] == deal["id"]
