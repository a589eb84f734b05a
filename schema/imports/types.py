"""Types of the import and export API."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from saas.exports.service import Export
from saas.imports.service import Import
from schema.errors import UserError
from schema.nodes import gid


@strawberry.enum
class ImportKind(enum.Enum):
    COMPANIES = "companies"
    CONTACTS = "contacts"
    DEALS = "deals"


@strawberry.enum
class ExportKind(enum.Enum):
    COMPANIES = "companies"
    CONTACTS = "contacts"
    DEALS = "deals"
    STAGE_EVENTS = "stage_events"


@strawberry.enum
class FileFormat(enum.Enum):
    CSV = "csv"
    JSONL = "jsonl"


@strawberry.enum
class JobStatus(enum.Enum):
    UPLOADED = "uploaded"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@strawberry.type(description="A column of the file and the field it is imported as "
                             "(null: not imported).")
class ColumnMapping:
    column: str
    field: str | None


@strawberry.input
class ColumnMappingInput:
    column: str
    field: str | None = strawberry.field(
        description="An import field (title, amount, currency, segment, stage, owner_email, "
                    "expected_close_date, temperature, labels, lost_reason, probability, "
                    "company_name, company_domain, contact_name, contact_email, contact_phone) "
                    "or null to skip the column.")


@strawberry.type(description="Why a row cannot be imported.")
class ImportProblem:
    line: int = strawberry.field(description="The line of the file where the row starts.")
    column: str | None = strawberry.field(description="As the file names it.")
    reason: str


@strawberry.type
class ImportJob:
    id: strawberry.ID
    kind: ImportKind
    format: FileFormat
    status: JobStatus
    file_bytes: int
    total_rows: int
    rows_done: int
    rows_failed: int
    objects_created: int
    mapping: list[ColumnMapping]
    problems: list[ImportProblem] = strawberry.field(
        description="Rows skipped by the import and why (the first 1,000).")
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_model(cls, i: Import) -> ImportJob:
        return cls(id=gid("Import", i.id), kind=ImportKind(i.kind), format=FileFormat(i.format),
                   status=JobStatus(i.status), file_bytes=i.file_bytes,
                   total_rows=i.total_rows, rows_done=i.rows_done, rows_failed=i.rows_failed,
                   objects_created=i.rows_created,
                   mapping=[ColumnMapping(column=c, field=i.mapping.get(c)) for c in i.columns],
                   problems=[ImportProblem(line=p["line"], column=p.get("column"),
                                           reason=p["reason"]) for p in i.errors],
                   error=i.error, created_at=i.created_at, started_at=i.started_at,
                   finished_at=i.finished_at)


@strawberry.type(description="What the import would do; nothing was written.")
class ImportDryRun:
    total_rows: int
    valid_rows: int
    invalid_rows: int
    problems: list[ImportProblem] = strawberry.field(description="Every problem (first 1,000).")
    mapping: list[ColumnMapping]


@strawberry.type
class ImportJobPayload:
    import_job: ImportJob | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ExportJob:
    id: strawberry.ID
    kind: ExportKind
    format: FileFormat
    status: JobStatus
    rows: int | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    download_url: str | None = strawberry.field(
        description="When done: a signed link to the file, valid until downloadExpiresAt.")
    download_expires_at: datetime | None

    @classmethod
    def from_model(cls, e: Export, url: str | None = None,
                   expires: datetime | None = None) -> ExportJob:
        return cls(id=gid("Export", e.id), kind=ExportKind(e.kind), format=FileFormat(e.format),
                   status=JobStatus(e.status), rows=e.rows, error=e.error,
                   created_at=e.created_at, finished_at=e.finished_at, download_url=url,
                   download_expires_at=expires)


@strawberry.type
class ExportJobPayload:
    export_job: ExportJob | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
