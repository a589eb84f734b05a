"""Import and export helpers: upload over HTTP, dry run, start, run the jobs."""

from __future__ import annotations

import csv
import io
from typing import Any

from saas.db import Database
from saas.settings import Settings
from tests.factories import Caller

DRY_RUN = """query($id: ID!, $m: [ColumnMappingInput!]) { importDryRun(importId: $id, mapping: $m) {
  totalRows validRows invalidRows problems { line column reason } mapping { column field } } }"""
START = """mutation($id: ID!, $m: [ColumnMappingInput!]) { startImport(input: {importId: $id, mapping: $m}) {
  importJob { id status } errors { code field message } } }"""
JOB = """query($id: ID!) { importJob(id: $id) { status totalRows rowsDone rowsFailed objectsCreated
  problems { line column reason } } }"""
EXPORT = """mutation($k: ExportKind!, $f: FileFormat) { requestExport(input: {kind: $k, format: $f}) {
  exportJob { id status } errors { code field message } } }"""
EXPORT_JOB = """query($id: ID!) { exportJob(id: $id) { status rows downloadUrl downloadExpiresAt } }"""

DEAL_COLUMNS = ["title", "amount", "currency", "segment", "stage", "owner_email",
                "expected_close_date", "temperature", "labels", "lost_reason", "probability",
                "company_name", "company_domain", "contact_name", "contact_email",
                "contact_phone"]


def to_csv(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


async def upload(caller: Caller, data: bytes, kind: str = "deals",
                 fmt: str = "csv") -> dict[str, Any]:
    response = await caller.client.post(f"/imports?kind={kind}&format={fmt}", content=data,
                                        headers=caller.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()["import"]
    return result


async def start(caller: Caller, import_id: str) -> dict[str, Any]:
    data = (await caller.ok(START, id=import_id))["startImport"]
    assert data["errors"] == [], data
    result: dict[str, Any] = data["importJob"]
    return result


async def run_jobs(settings: Settings, db: Database) -> None:
    from tests.forecasting.test_jobs import run_burst_worker

    await run_burst_worker(settings, db)
