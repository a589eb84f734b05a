"""Exports: request (exports:read), the job that writes the file, signed download links.

A file is written in the columns the importer reads (saas/imports/parsing.FIELDS), so an
export imported into another tenant reproduces the data. The download link carries the
tenant, the export, an expiry and an HMAC of the three; it needs no other credential and
works until it expires (EXPORT_URL_TTL_SECONDS).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text

from saas.db import Database, UnitOfWork
from saas.entity_events import gid
from saas.errors import NotFound, ValidationFailed
from tenants.principal import Principal
from tenants.scopes import Scope

KINDS = ("companies", "contacts", "deals", "stage_events")
FORMATS = ("csv", "jsonl")
JOB = "run_export"


def job_id(export_id: uuid.UUID) -> str:
    return f"export:{export_id}"

COLUMNS = {
    "companies": ["id", "company_name", "company_domain"],
    "contacts": ["id", "contact_name", "contact_email", "contact_phone", "company_name",
                 "company_domain"],
    "deals": ["id", "title", "amount", "currency", "segment", "stage", "owner_email",
              "expected_close_date", "temperature", "labels", "lost_reason", "probability",
              "company_name", "company_domain", "contact_name", "contact_email",
              "contact_phone", "created_at"],
    "stage_events": ["seq", "occurred_at", "kind", "deal_id", "pipeline_id", "from_stage",
                     "to_stage", "amount", "currency", "lost_reason", "actor_user_id",
                     "actor_api_key_id"],
}

_QUERIES = {
    "companies": "SELECT c.id, c.name AS company_name, c.domain AS company_domain "
                 "FROM companies c ORDER BY c.created_at, c.id",
    "contacts": "SELECT p.id, p.name AS contact_name, p.email AS contact_email, "
                "p.phone AS contact_phone, c.name AS company_name, c.domain AS company_domain "
                "FROM contacts p LEFT JOIN companies c ON c.tenant_id = p.tenant_id "
                "AND c.id = p.company_id ORDER BY p.created_at, p.id",
    "deals": "SELECT d.id, d.title, d.amount, d.currency, g.name AS segment, s.name AS stage, "
             "u.email AS owner_email, d.expected_close_date, d.temperature, d.labels, "
             "d.lost_reason, d.probability_override AS probability, c.name AS company_name, "
             "c.domain AS company_domain, p.name AS contact_name, p.email AS contact_email, "
             "p.phone AS contact_phone, d.created_at FROM deals d "
             "JOIN stages s ON s.tenant_id = d.tenant_id AND s.id = d.stage_id "
             "JOIN pipelines pl ON pl.tenant_id = d.tenant_id AND pl.id = d.pipeline_id "
             "JOIN segments g ON g.tenant_id = pl.tenant_id AND g.id = pl.segment_id "
             "LEFT JOIN users u ON u.tenant_id = d.tenant_id AND u.id = d.owner_id "
             "LEFT JOIN companies c ON c.tenant_id = d.tenant_id AND c.id = d.company_id "
             "LEFT JOIN contacts p ON p.tenant_id = d.tenant_id AND p.id = d.contact_id "
             "WHERE d.archived_at IS NULL ORDER BY d.created_at, d.id",
    "stage_events": "SELECT e.seq, e.occurred_at, e.kind, e.deal_id, e.pipeline_id, "
                    "fs.name AS from_stage, ts.name AS to_stage, e.amount, e.currency, "
                    "e.lost_reason, e.actor_user_id, e.actor_api_key_id FROM stage_events e "
                    "LEFT JOIN stages fs ON fs.tenant_id = e.tenant_id AND fs.id = e.from_stage_id "
                    "LEFT JOIN stages ts ON ts.tenant_id = e.tenant_id AND ts.id = e.to_stage_id "
                    "WHERE (CAST(:from AS timestamptz) IS NULL OR e.occurred_at >= :from) "
                    "AND (CAST(:to AS timestamptz) IS NULL OR e.occurred_at < :to) "
                    "ORDER BY e.seq",
}
_ID_TYPES = {"id": None, "deal_id": "Deal", "pipeline_id": "Pipeline", "actor_user_id": "User",
             "actor_api_key_id": "ApiKey"}
_OWN_TYPE = {"companies": "Company", "contacts": "Contact", "deals": "Deal"}


@dataclass(frozen=True)
class Export:
    id: uuid.UUID
    kind: str
    format: str
    status: str
    period_from: datetime | None
    period_to: datetime | None
    rows: int | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


_COLUMNS = "id, kind, format, status, period_from, period_to, rows, error, created_at, finished_at"


async def get(*, uow: UnitOfWork, export_id: uuid.UUID) -> Export:
    row = (await uow.session.execute(text(f"SELECT {_COLUMNS} FROM exports WHERE id = :id"),
                                     {"id": export_id})).one_or_none()
    if row is None:
        raise NotFound("export not found", field="id")
    return Export(**row._mapping)


async def request(*, uow: UnitOfWork, principal: Principal, kind: str, fmt: str,
                  period_from: datetime | None, period_to: datetime | None) -> Export:
    principal.require(Scope.EXPORTS_READ)
    if kind not in KINDS:
        raise ValidationFailed("kind is companies, contacts, deals or stage_events",
                               field="kind")
    if fmt not in FORMATS:
        raise ValidationFailed("format is csv or jsonl", field="format")
    if (period_from or period_to) and kind != "stage_events":
        raise ValidationFailed("a period applies to stage_events only", field="from")
    if period_from and period_to and period_to <= period_from:
        raise ValidationFailed("the period ends after it starts", field="to")
    export_id = uuid.uuid4()
    await uow.session.execute(text(
        "INSERT INTO exports (tenant_id, id, kind, format, period_from, period_to, created_by, "
        "created_by_api_key) VALUES (:t, :id, :k, :f, :a, :b, :u, :key)"),
        {"t": uow.tenant_id, "id": export_id, "k": kind, "f": fmt, "a": period_from,
         "b": period_to, "u": principal.user_id, "key": principal.api_key_id})
    return await get(uow=uow, export_id=export_id)


def _cell(kind: str, name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _ID_TYPES:
        return gid(_ID_TYPES[name] or _OWN_TYPE[kind], value)
    if name == "labels":
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if not isinstance(value, str | int) else value


def render(kind: str, fmt: str, rows: list[Any]) -> bytes:
    columns = COLUMNS[kind]
    if fmt == "jsonl":
        return b"".join(orjson.dumps({c: _cell(kind, c, getattr(r, c)) for c in columns})
                        + b"\n" for r in rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        cells = []
        for c in columns:
            value = _cell(kind, c, getattr(r, c))
            if c == "labels":
                value = ("; ".join(value) if not any(";" in x for x in value)
                         else orjson.dumps(value).decode()) if value else ""
            cells.append("" if value is None else value)
        writer.writerow(cells)
    return out.getvalue().encode()


async def run(db: Database, tenant_id: uuid.UUID, export_id: uuid.UUID) -> str:
    """Write the export's file (idempotent: a finished export is left as it is)."""
    async with db.unit_of_work(tenant_id) as uow:
        row = (await uow.session.execute(text(
            "UPDATE exports SET status = 'running' WHERE id = :id "
            "AND status IN ('queued', 'running') RETURNING kind, format, period_from, period_to"),
            {"id": export_id})).one_or_none()
        if row is None:
            return str((await uow.session.execute(text(
                "SELECT status FROM exports WHERE id = :id"), {"id": export_id})).scalar())
    async with db.unit_of_work(tenant_id) as uow:
        rows = list(await uow.session.execute(text(_QUERIES[row.kind]),
                                              {"from": row.period_from, "to": row.period_to}))
    data = render(row.kind, row.format, rows)
    async with db.unit_of_work(tenant_id) as uow:
        await uow.session.execute(text(
            "UPDATE exports SET status = 'done', file = :f, rows = :n, finished_at = now() "
            "WHERE id = :id AND status = 'running'"),
            {"id": export_id, "f": data, "n": len(rows)})
    return "done"


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"export-download-links", hashlib.sha256).digest()


def signed_path(secret: str, tenant_id: uuid.UUID, export_id: uuid.UUID, ttl: int,
                now: float | None = None) -> tuple[str, int]:
    """(/exports/... path with its signature, expiry as Unix seconds)."""
    expires = int((now or time.time()) + ttl)
    message = f"{tenant_id}:{export_id}:{expires}".encode()
    signature = base64.urlsafe_b64encode(hmac.new(_key(secret), message, hashlib.sha256)
                                         .digest()).decode().rstrip("=")
    return (f"/exports/{export_id}?tenant={tenant_id}&expires={expires}"
            f"&signature={signature}", expires)


def check_signature(secret: str, tenant: str, export: str, expires: str,
                    signature: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(tenant, export) of a valid, unexpired link; None otherwise."""
    try:
        tenant_id, export_id, until = uuid.UUID(tenant), uuid.UUID(export), int(expires)
    except ValueError:
        return None
    if until < time.time():
        return None
    expected, _ = signed_path(secret, tenant_id, export_id, 0, now=until)
    given = f"/exports/{export_id}?tenant={tenant_id}&expires={until}&signature={signature}"
    return (tenant_id, export_id) if hmac.compare_digest(expected, given) else None


async def file(db: Database, tenant_id: uuid.UUID, export_id: uuid.UUID
               ) -> tuple[str, str, bytes] | None:
    async with db.unit_of_work(tenant_id) as uow:
        row = (await uow.session.execute(text(
            "SELECT kind, format, file FROM exports WHERE id = :id AND status = 'done'"),
            {"id": export_id})).one_or_none()
    return (row.kind, row.format, bytes(row.file)) if row is not None else None
