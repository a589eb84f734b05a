"""Imports: upload, dry run, start (imports:write); the job itself is in `loader.py`.

    upload    the file is stored with the import (status `uploaded`), its columns and the
              default mapping by header name; size and row limits enforced here
    dry run   every row checked with the given mapping; nothing is written
    start     the mapping is kept, the import becomes `queued` and its job is enqueued after
              commit (a sweeper re-enqueues queued imports whose job got lost)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text

from saas.db import UnitOfWork
from saas.errors import Conflict, LimitExceeded, NotFound, ValidationFailed
from saas.imports import parsing
from saas.imports.validation import Checked, Lookups, StageRef, check
from tenants.principal import Principal
from tenants.scopes import Scope

KINDS = ("companies", "contacts", "deals")
FORMATS = ("csv", "jsonl")
MAX_PROBLEMS = 1000
JOB = "run_import"

_COLUMNS = ("id, kind, format, status, file_bytes, total_rows, columns, mapping, options, "
            "rows_done, rows_failed, rows_created, errors, error, created_at, started_at, "
            "finished_at")


@dataclass(frozen=True)
class Import:
    id: uuid.UUID
    kind: str
    format: str
    status: str
    file_bytes: int
    total_rows: int
    columns: list[str]
    mapping: dict[str, str | None]
    options: dict[str, Any]
    rows_done: int
    rows_failed: int
    rows_created: int
    errors: list[dict[str, Any]]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Import:
        return cls(**{k: getattr(row, k) for k in cls.__dataclass_fields__})


async def get(*, uow: UnitOfWork, import_id: uuid.UUID, for_update: bool = False) -> Import:
    row = (await uow.session.execute(text(
        f"SELECT {_COLUMNS} FROM imports WHERE id = :id" + (" FOR UPDATE" if for_update else "")),
        {"id": import_id})).one_or_none()
    if row is None:
        raise NotFound("import not found", field="importId")
    return Import.from_row(row)


async def list_recent(*, uow: UnitOfWork, limit: int) -> list[Import]:
    rows = await uow.session.execute(text(
        f"SELECT {_COLUMNS} FROM imports ORDER BY created_at DESC, id LIMIT :n"), {"n": limit})
    return [Import.from_row(r) for r in rows]


async def upload(*, uow: UnitOfWork, principal: Principal, kind: str, fmt: str, data: bytes,
                 max_bytes: int, max_rows: int) -> Import:
    """Store a file for importing; problems that concern the whole file refuse it."""
    principal.require(Scope.IMPORTS_WRITE)
    if kind not in KINDS:
        raise ValidationFailed("kind is companies, contacts or deals", field="kind")
    if fmt not in FORMATS:
        raise ValidationFailed("format is csv or jsonl", field="format")
    if len(data) > max_bytes:
        raise LimitExceeded(f"an import file is at most {max_bytes} bytes", field="file")
    parsed = parsing.parse(data, fmt)
    fatal = [p for p in parsed.problems if p.line <= 1 or "NUL" in p.reason
             or "UTF-8" in p.reason]
    if fatal:
        raise ValidationFailed(f"line {fatal[0].line}: {fatal[0].reason}", field="file")
    if not parsed.records and not parsed.problems:
        raise ValidationFailed("the file has no rows", field="file")
    rows = len(parsed.records) + len(parsed.problems)
    if rows > max_rows:
        raise LimitExceeded(f"an import has at most {max_rows} rows", field="file")
    import_id = uuid.uuid4()
    mapping = parsing.default_mapping(kind, parsed.columns)
    await uow.session.execute(text(
        "INSERT INTO imports (tenant_id, id, kind, format, file, file_bytes, total_rows, "
        "columns, mapping, created_by, created_by_api_key) VALUES (:t, :id, :kind, :fmt, "
        ":file, :n, :rows, :columns, CAST(:mapping AS jsonb), :user, :key)"),
        {"t": uow.tenant_id, "id": import_id, "kind": kind, "fmt": fmt, "file": data,
         "n": len(data), "rows": rows, "columns": parsed.columns,
         "mapping": orjson.dumps(mapping).decode(), "user": principal.user_id,
         "key": principal.api_key_id})
    return await get(uow=uow, import_id=import_id)


def resolve_mapping(imp: Import, given: dict[str, str | None] | None) -> dict[str, str | None]:
    """The stored mapping with the given changes (header -> field or None)."""
    mapping = dict(imp.mapping)
    for header, target in (given or {}).items():
        if header not in mapping:
            raise ValidationFailed(f"the file has no column {header!r}", field="mapping")
        if target is not None and target not in parsing.FIELDS:
            raise ValidationFailed(f"{target!r} is not an import field", field="mapping")
        mapping[header] = target
    targets = [t for t in mapping.values() if t]
    if len(targets) != len(set(targets)):
        raise ValidationFailed("two columns map to the same field", field="mapping")
    return mapping


async def lookups(uow: UnitOfWork) -> Lookups:
    """Segments, stages, users and the base currency, as rows are checked against them."""
    stages: dict[tuple[str, str], StageRef] = {}
    first_open: dict[str, StageRef] = {}
    default = None
    for r in await uow.session.execute(text(
            "SELECT g.name AS segment, s.name, s.kind, s.pipeline_id, s.id FROM stages s "
            "JOIN pipelines p ON p.tenant_id = s.tenant_id AND p.id = s.pipeline_id "
            "JOIN segments g ON g.tenant_id = p.tenant_id AND g.id = p.segment_id "
            "WHERE s.archived_at IS NULL ORDER BY g.created_at, g.id, s.position")):
        segment = r.segment.lower()
        default = default or segment
        ref = StageRef(r.pipeline_id, r.id, r.kind)
        stages.setdefault((segment, r.name.lower()), ref)
        if r.kind == "open":
            first_open.setdefault(segment, ref)
    users = {r.email.lower(): r.id for r in await uow.session.execute(text(
        "SELECT id, email FROM users WHERE is_active"))}
    currency = (await uow.session.execute(text(
        "SELECT base_currency FROM tenants WHERE id = :t"), {"t": uow.tenant_id})).scalar()
    return Lookups(stages, first_open, default or "", users, currency or "USD")


async def dry_run(*, uow: UnitOfWork, principal: Principal, import_id: uuid.UUID,
                  mapping: dict[str, str | None] | None) -> tuple[Import, Checked, int,
                                                                   dict[str, str | None]]:
    """Check every row; (import, checked, rows with problems, mapping). Writes nothing."""
    principal.require(Scope.IMPORTS_WRITE)
    imp = await get(uow=uow, import_id=import_id)
    resolved = resolve_mapping(imp, mapping)
    file: bytes = (await uow.session.execute(text("SELECT file FROM imports WHERE id = :id"),
                                      {"id": import_id})).scalar_one()
    parsed = parsing.parse(bytes(file), imp.format)
    checked = check(imp.kind, parsed.records, resolved, await lookups(uow))
    checked.problems = sorted(parsed.problems + checked.problems,
                              key=lambda p: (p.line, p.column or ""))
    bad_lines = checked.invalid_lines | {p.line for p in parsed.problems}
    return imp, checked, len(bad_lines), resolved


async def start(*, uow: UnitOfWork, principal: Principal, import_id: uuid.UUID,
                mapping: dict[str, str | None] | None) -> Import:
    """Queue the import with its mapping; the job runs it (rows with problems are skipped
    and reported)."""
    principal.require(Scope.IMPORTS_WRITE)
    imp = await get(uow=uow, import_id=import_id, for_update=True)
    if imp.status != "uploaded":
        raise Conflict(f"the import is already {imp.status}", field="importId")
    resolved = resolve_mapping(imp, mapping)
    if not any(resolved.values()):
        raise ValidationFailed("no column is mapped to a field", field="mapping")
    await uow.session.execute(text(
        "UPDATE imports SET status = 'queued', mapping = CAST(:m AS jsonb) WHERE id = :id"),
        {"id": import_id, "m": orjson.dumps(resolved).decode()})
    return await get(uow=uow, import_id=import_id)


def job_id(import_id: uuid.UUID) -> str:
    return f"import:{import_id}"


__all__ = ["MAX_PROBLEMS", "Import", "dry_run", "get", "job_id", "list_recent", "lookups",
           "start", "upload"]
