"""An import killed halfway and resumed creates each row exactly once; an export imported
into a new tenant reproduces the data field by field; download links are signed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import asyncpg
import httpx

from saas.db import Database
from saas.imports import loader
from saas.settings import Settings
from tests.deals.ops import CREATE_SEGMENT, create_deal, default_pipeline, move, stage_ids
from tests.factories import TenantFactory
from tests.imports.support import (
    DEAL_COLUMNS,
    EXPORT,
    EXPORT_JOB,
    JOB,
    run_jobs,
    start,
    to_csv,
    upload,
)
from tests.webhooks.test_delivery import raw as raw_id

ROWS = 3000


async def test_an_import_killed_halfway_and_resumed_creates_each_row_exactly_once(
    tenants: TenantFactory, owner_url: str, settings: Settings, db: Database,
    owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    rows = [[f"deal {i}", str(i), "EUR", "", "Proposal" if i % 2 else "", "", "", "", "", "",
             "", f"Company {i % 40}", f"c{i % 40}.test", f"Person {i % 300}",
             f"p{i % 300}@c.test", ""] for i in range(ROWS)]
    uploaded = await upload(admin, to_csv(DEAL_COLUMNS, rows))
    import_id = uuid.UUID(raw_id(uploaded["id"]))
    await start(admin, uploaded["id"])  # enqueued for the worker below
    env = {**os.environ, "ENVIRONMENT": "test", "DATABASE_URL": owner_url,
           "REDIS_URL": settings.redis_url or "", "ARQ_QUEUE_NAME": settings.arq_queue_name,
           "IMPORT_BATCH_ROWS": "20", "WEBHOOK_DELIVERY_IN_WORKER": "false",
           # A killed job is retried once its in-progress mark expires (timeout + 10 s).
           "JOB_TIMEOUT_SECONDS": "2",
           "HOSTNAME": f"test-{uuid.uuid4().hex[:6]}"}
    worker = subprocess.Popen([sys.executable, "-m", "saas.cli", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        done = 0
        while time.monotonic() < deadline:
            done = await owner_conn.fetchval("SELECT rows_done FROM imports WHERE id = $1",
                                             import_id)
            if done >= 200:
                break
            await asyncio.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    at_kill = await owner_conn.fetchrow(
        "SELECT status, rows_done FROM imports WHERE id = $1", import_id)
    assert at_kill["status"] == "running" and 200 <= at_kill["rows_done"] < ROWS, dict(at_kill)
    created = await owner_conn.fetchval("SELECT count(*) FROM deals WHERE tenant_id = $1", t.id)
    assert created == at_kill["rows_done"]  # each committed batch with its cursor
    # The retry (what arq does with a killed worker's job) resumes from the committed cursor.
    assert await loader.run(db, t.id, import_id, batch_rows=500) == "done"
    assert await loader.run(db, t.id, import_id, batch_rows=500) == "done"  # again: nothing
    counts = await owner_conn.fetchrow(
        "SELECT count(*) AS deals, count(DISTINCT import_row) AS rows, "
        "count(DISTINCT title) AS titles FROM deals WHERE tenant_id = $1", t.id)
    assert dict(counts) == {"deals": ROWS, "rows": ROWS, "titles": ROWS}
    assert await owner_conn.fetchval(
        "SELECT count(*) FROM stage_events WHERE tenant_id = $1", t.id) == ROWS
    assert await owner_conn.fetchval(
        "SELECT count(*) FROM companies WHERE tenant_id = $1", t.id) == 40
    assert await owner_conn.fetchval(
        "SELECT count(*) FROM contacts WHERE tenant_id = $1", t.id) == 300
    job = (await admin.ok(JOB, id=uploaded["id"]))["importJob"]
    assert (job["status"], job["rowsDone"], job["rowsFailed"]) == ("DONE", ROWS, 0)


FIELDS = """SELECT d.title, d.amount, d.currency, g.name AS segment, s.name AS stage,
  d.expected_close_date, d.temperature, d.labels, d.lost_reason, d.probability_override,
  c.name AS company, c.domain, p.name AS contact, p.email, p.phone
  FROM deals d JOIN stages s ON s.tenant_id = d.tenant_id AND s.id = d.stage_id
  JOIN pipelines pl ON pl.tenant_id = d.tenant_id AND pl.id = d.pipeline_id
  JOIN segments g ON g.tenant_id = pl.tenant_id AND g.id = pl.segment_id
  LEFT JOIN companies c ON c.tenant_id = d.tenant_id AND c.id = d.company_id
  LEFT JOIN contacts p ON p.tenant_id = d.tenant_id AND p.id = d.contact_id
  WHERE d.tenant_id = $1 ORDER BY d.title"""


async def _export(caller: Any, settings: Settings, db: Database, kind: str, fmt: str) -> str:
    requested = (await caller.ok(EXPORT, k=kind, f=fmt))["requestExport"]
    assert requested["errors"] == [], requested
    await run_jobs(settings, db)
    job = (await caller.ok(EXPORT_JOB, id=requested["exportJob"]["id"]))["exportJob"]
    assert job["status"] == "DONE" and job["downloadUrl"].startswith(settings.public_base_url)
    url: str = job["downloadUrl"]
    return url


async def test_export_then_import_into_a_new_tenant_gives_equal_data(
    tenants: TenantFactory, client: httpx.AsyncClient, settings: Settings, db: Database,
    owner_conn: asyncpg.Connection,
) -> None:
    a = await tenants.create()
    admin = a.admin_caller
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    company = (await admin.ok('mutation { createCompany(input: {name: "Acme", domain: '
                              '"acme.test"}) { company { id } } }'))["createCompany"]["company"]
    contact = (await admin.ok(
        'mutation($c: ID) { createContact(input: {name: "Ann", email: "ann@acme.test", '
        'phone: "+1 555", companyId: $c}) { contact { id } } }', c=company["id"])
    )["createContact"]["contact"]
    await admin.ok(CREATE_SEGMENT, name="Enterprise", stages=[
        {"name": "Intro", "kind": "OPEN"}, {"name": "Signed", "kind": "WON"},
        {"name": "Dropped", "kind": "LOST", "probability": "0"}])
    await create_deal(admin, pipeline["id"], "plain")
    full = await create_deal(admin, pipeline["id"], "full", amount="1234.56", currency="EUR",
                             labels=["vip", "q1"], contactId=contact["id"],
                             companyId=company["id"], expectedCloseDate="2027-03-01",
                             temperature="HOT", probabilityOverride="0.75")
    lost = await create_deal(admin, pipeline["id"], "lost one", amount="99")
    assert (await move(admin, lost["id"], stages["Lost"], 1, "budget"))["errors"] == []
    assert (await move(admin, full["id"], stages["Negotiation"], 1))["errors"] == []
    segments = (await admin.ok("query { segments { name pipeline { id } } }"))["segments"]
    enterprise = next(s for s in segments if s["name"] == "Enterprise")["pipeline"]["id"]
    await create_deal(admin, enterprise, "enterprise deal", amount="5")
    url = await _export(admin, settings, db, "DEALS", "CSV")
    downloaded = await client.get(url.removeprefix(settings.public_base_url))
    assert downloaded.status_code == 200
    assert downloaded.headers["content-type"].startswith("text/csv")
    b = await tenants.create()
    await b.admin_caller.ok(CREATE_SEGMENT, name="Enterprise", stages=[
        {"name": "Intro", "kind": "OPEN"}, {"name": "Signed", "kind": "WON"},
        {"name": "Dropped", "kind": "LOST", "probability": "0"}])
    uploaded = await upload(b.admin_caller, downloaded.content)
    mapping = {m["column"]: m["field"] for m in uploaded["mapping"]}
    assert mapping["owner_email"] == "owner_email" and mapping["id"] is None
    # Owners are people of the other tenant: the new tenant's importer owns the deals.
    job = (await b.admin_caller.ok(
        """mutation($id: ID!) { startImport(input: {importId: $id,
             mapping: [{column: "owner_email", field: null}]}) { errors { code } } }""",
        id=uploaded["id"]))["startImport"]
    assert job["errors"] == []
    await run_jobs(settings, db)
    source = [dict(r) for r in await owner_conn.fetch(FIELDS, a.id)]
    copied = [dict(r) for r in await owner_conn.fetch(FIELDS, b.id)]
    assert len(source) == 4
    assert copied == source
    # Companies and contacts came along once each, matched across rows.
    assert await owner_conn.fetchval("SELECT count(*) FROM companies WHERE tenant_id = $1",
                                     b.id) == 1


async def test_download_links_are_signed_and_expire(
    tenants: TenantFactory, client: httpx.AsyncClient, settings: Settings, db: Database,
) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    await admin.ok('mutation { createCompany(input: {name: "Acme"}) { company { id } } }')
    url = (await _export(admin, settings, db, "COMPANIES", "JSONL")).removeprefix(
        settings.public_base_url)
    ok = await client.get(url)
    assert ok.status_code == 200 and ok.headers["content-type"] == "application/x-ndjson"
    assert b'"company_name":"Acme"' in ok.content
    tampered = url.replace("signature=", "signature=x")
    assert (await client.get(tampered)).status_code == 403
    other = await tenants.create()
    forged = url.replace(str(t.id), str(other.id))
    assert (await client.get(forged)).status_code == 403
    expired = url.split("&expires=")[0] + "&expires=1&signature=" + url.split("signature=")[1]
    assert (await client.get(expired)).status_code == 403
    reader = t.key_caller(await t.api_key("read"))
    denied = await reader.gql(EXPORT, k="DEALS", f="CSV")
    assert denied["data"]["requestExport"]["errors"][0]["code"] == "FORBIDDEN"
