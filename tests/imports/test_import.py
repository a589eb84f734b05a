"""Import: a dry run reports every bad row with line and column and writes nothing; the job
imports valid rows once, matching existing companies and contacts; size limits."""

from __future__ import annotations

import asyncpg
import httpx

from saas.db import Database
from saas.settings import Settings
from tests.factories import TenantFactory, snapshot
from tests.imports.support import (
    DEAL_COLUMNS,
    DRY_RUN,
    JOB,
    run_jobs,
    start,
    to_csv,
    upload,
)

OK = {"title": "Fine", "amount": "10.50", "currency": "EUR", "segment": "", "stage": "Proposal",
      "owner_email": "", "expected_close_date": "2027-01-31", "temperature": "hot",
      "labels": "a; b", "lost_reason": "", "probability": "0.3", "company_name": "Acme",
      "company_domain": "acme.test", "contact_name": "Ann", "contact_email": "ann@acme.test",
      "contact_phone": "+1 555 0100"}


def row(**changes: str) -> list[str]:
    values = {**OK, **changes}
    return [values[c] for c in DEAL_COLUMNS]


# (what is wrong, the row, the column reported, a word of the reason)
BAD = [
    ("no title", row(title=""), "title", "needs a title"),
    ("long title", row(title="x" * 301), "title", "at most 300"),
    ("amount not a number", row(amount="12,5x"), "amount", "not a number"),
    ("negative amount", row(amount="-5"), "amount", "negative"),
    ("three decimals", row(amount="1.234"), "amount", "2 decimals"),
    ("unknown currency", row(currency="XYZ"), "currency", "ISO 4217"),
    ("unknown segment", row(segment="Nope"), "segment", "no segment"),
    ("unknown stage", row(stage="Nowhere"), "stage", "no stage"),
    ("unknown owner", row(owner_email="nobody@x.test"), "owner_email", "no active user"),
    ("owner not an e-mail", row(owner_email="not-an-email"), "owner_email", "not an e-mail"),
    ("bad date", row(expected_close_date="2026-13-01"), "expected_close_date", "not a date"),
    ("bad temperature", row(temperature="boiling"), "temperature", "hot, warm or cold"),
    ("too many labels", row(labels=";".join(f"l{i}" for i in range(21))), "labels", "at most 20"),
    ("labels not strings", row(labels='["a", 1]'), "labels", "JSON list of strings"),
    ("lost without reason", row(stage="Lost"), "lost_reason", "needs a lost reason"),
    ("reason on an open deal", row(lost_reason="why"), "lost_reason", "only deals in a lost"),
    ("long lost reason", row(stage="Lost", lost_reason="r" * 501), "lost_reason", "at most 500"),
    ("probability above 1", row(probability="1.5"), "probability", "from 0 to 1"),
    ("bad domain", row(company_domain="not a domain"), "company_domain", "not a domain"),
    ("bad contact e-mail", row(contact_email="bad@"), "contact_email", "not an e-mail"),
    ("bad phone", row(contact_phone="call me"), "contact_phone", "not a phone"),
    ("too few fields", ["only", "three", "fields"], None, "expected 16 fields, found 3"),
]


def bad_file() -> tuple[bytes, dict[int, tuple[str | None, str]]]:
    """Header on line 1, a valid row whose title spans two lines (2-3), then each bad row
    between valid ones; returns the file and line -> (column, reason word)."""
    rows: list[list[str]] = [row(title="two\nlines")]
    expected: dict[int, tuple[str | None, str]] = {}
    line = 4
    for _, bad, column, word in BAD:
        rows.append(bad)
        expected[line] = (column, word)
        rows.append(row(title=f"good after line {line}"))
        line += 2
    return to_csv(DEAL_COLUMNS, rows), expected


async def test_dry_run_reports_every_kind_of_bad_row_with_line_and_column_and_writes_nothing(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    data, expected = bad_file()
    uploaded = await upload(admin, data)
    assert uploaded["totalRows"] == 1 + 2 * len(BAD)
    assert {m["column"]: m["field"] for m in uploaded["mapping"]} == {c: c for c in DEAL_COLUMNS}
    before = await snapshot(owner_conn, t.id)
    imports_before = await owner_conn.fetchrow(
        "SELECT status, mapping, rows_done FROM imports WHERE tenant_id = $1", t.id)
    report = (await admin.ok(DRY_RUN, id=uploaded["id"]))["importDryRun"]
    assert report["invalidRows"] == len(BAD)
    assert report["validRows"] == 1 + len(BAD)
    found = {p["line"]: p for p in report["problems"]}
    assert sorted(found) == sorted(expected)
    assert len(report["problems"]) == len(BAD)  # one problem per bad row, nothing else
    for line, (column, word) in expected.items():
        assert found[line]["column"] == column, found[line]
        assert word in found[line]["reason"], found[line]
    assert len(BAD) >= 20
    assert await snapshot(owner_conn, t.id) == before
    assert await owner_conn.fetchrow(
        "SELECT status, mapping, rows_done FROM imports WHERE tenant_id = $1", t.id) \
        == imports_before


async def test_the_import_creates_valid_rows_once_with_history_and_reports_the_rest(
    tenants: TenantFactory, owner_conn: asyncpg.Connection, settings: Settings, db: Database,
) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    await admin.ok('mutation { createCompany(input: {name: "Acme Inc", domain: "acme.test"}) '
                   '{ company { id } } }')
    data, expected = bad_file()
    uploaded = await upload(admin, data)
    assert (await start(admin, uploaded["id"]))["status"] == "QUEUED"
    await run_jobs(settings, db)
    job = (await admin.ok(JOB, id=uploaded["id"]))["importJob"]
    assert (job["status"], job["rowsDone"], job["rowsFailed"]) == ("DONE", 1 + 2 * len(BAD),
                                                                  len(BAD))
    assert sorted(p["line"] for p in job["problems"]) == sorted(expected)
    deals = await owner_conn.fetch(
        "SELECT d.title, d.amount, d.currency, s.name AS stage, d.labels, d.temperature, "
        "d.expected_close_date, d.probability_override, c.name AS company, p.email "
        "FROM deals d JOIN stages s ON s.tenant_id = d.tenant_id AND s.id = d.stage_id "
        "LEFT JOIN companies c ON c.tenant_id = d.tenant_id AND c.id = d.company_id "
        "LEFT JOIN contacts p ON p.tenant_id = d.tenant_id AND p.id = d.contact_id "
        "WHERE d.tenant_id = $1 ORDER BY d.import_row", t.id)
    assert len(deals) == 1 + len(BAD)
    assert deals[0]["title"] == "two\nlines"
    assert {(d["stage"], str(d["amount"]), d["currency"], tuple(d["labels"]), d["temperature"],
             str(d["expected_close_date"]), str(d["probability_override"]), d["company"],
             d["email"]) for d in deals} == {
        ("Proposal", "10.50", "EUR", ("a", "b"), "hot", "2027-01-31", "0.3000", "Acme Inc",
         "ann@acme.test")}
    # The existing company (same domain) and one contact (same e-mail) for every row.
    assert await owner_conn.fetchval(
        "SELECT count(*) FROM companies WHERE tenant_id = $1", t.id) == 1
    assert await owner_conn.fetchval(
        "SELECT count(*) FROM contacts WHERE tenant_id = $1", t.id) == 1
    events = await owner_conn.fetch(
        "SELECT kind, actor_user_id, data FROM stage_events WHERE tenant_id = $1", t.id)
    assert len(events) == len(deals) and {e["kind"] for e in events} == {"created"}
    assert {e["actor_user_id"] for e in events} == {t.admin.user_id}
    assert all('"import"' in e["data"] for e in events)
    seqs = await owner_conn.fetch(
        "SELECT seq FROM stage_events WHERE tenant_id = $1 ORDER BY seq", t.id)
    assert len({s["seq"] for s in seqs}) == len(deals)
    completed = await owner_conn.fetchval(
        "SELECT data FROM entity_events WHERE tenant_id = $1 AND kind = 'import.completed'",
        t.id)
    assert '"rowsFailed": 22' in completed


async def test_uploads_are_limited_and_need_imports_write(
    tenants: TenantFactory, client: httpx.AsyncClient, settings: Settings, app: object,
) -> None:
    t = await tenants.create()
    reader = t.key_caller(await t.api_key("read_write"))
    refused = await client.post("/imports?kind=deals", content=b"title\nx\n",
                                headers=reader.headers)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "FORBIDDEN"
    anonymous = await client.post("/imports?kind=deals", content=b"title\nx\n")
    assert anonymous.status_code == 401
    admin = t.admin_caller
    big = b"title\n" + b"x" * (settings.import_max_bytes + 1)
    too_big = await client.post("/imports?kind=deals", content=big, headers=admin.headers)
    assert too_big.status_code == 413
    for body, kind, word in ((b"title\nx\n", "planets", "kind"),
                             (b"\x00\x01", "deals", "NUL"),
                             (b"title\n", "deals", "no rows"),
                             (b"\xff\xfe title\n", "deals", "UTF-8")):
        r = await client.post(f"/imports?kind={kind}", content=body, headers=admin.headers)
        assert r.status_code == 422 and word in r.json()["errors"][0]["message"], r.text
