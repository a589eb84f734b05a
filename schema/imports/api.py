"""Queries, mutations and the progress subscription of imports (imports:write) and exports
(exports:read). Files are uploaded with POST /imports (saas/imports/http.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import strawberry

from saas import outbox
from saas.exports import service as exports
from saas.imports import service as imports
from schema.context import Info
from schema.imports.types import (
    ColumnMapping,
    ColumnMappingInput,
    ExportJob,
    ExportJobPayload,
    ExportKind,
    FileFormat,
    ImportDryRun,
    ImportJob,
    ImportJobPayload,
    ImportProblem,
)
from schema.live.api import errors_mapped
from schema.mutations import payload
from schema.nodes import decode_id
from tenants.scopes import Scope

PROGRESS_POLL_SECONDS = 0.5


@strawberry.input
class StartImportInput:
    import_id: strawberry.ID
    mapping: list[ColumnMappingInput] | None = strawberry.field(
        default=None, description="Changes to the default mapping (by header name).")


@strawberry.input
class RequestExportInput:
    kind: ExportKind
    format: FileFormat = FileFormat.CSV
    from_: datetime | None = strawberry.field(default=None, name="from",
                                              description="stage_events only: from (incl.)")
    to: datetime | None = strawberry.field(default=None, description="stage_events: to (excl.)")


def _mapping(given: list[ColumnMappingInput] | None) -> dict[str, str | None] | None:
    return {m.column: m.field for m in given} if given is not None else None


def _import_id(value: strawberry.ID) -> uuid.UUID:
    return decode_id(value, "Import", field="importId")


def _export(info: Info, e: exports.Export) -> ExportJob:
    if e.status != "done":
        return ExportJob.from_model(e)
    principal = info.context.require_principal()
    settings = info.context.settings
    path, expires = exports.signed_path(settings.jwt_secret, principal.tenant_id, e.id,
                                        settings.export_url_ttl_seconds)
    return ExportJob.from_model(e, settings.public_base_url.rstrip("/") + path,
                                datetime.fromtimestamp(expires, UTC))


@strawberry.type
class ImportsQuery:
    @strawberry.field(description="An import and its progress (imports:write).")
    async def import_job(self, info: Info, id: strawberry.ID) -> ImportJob:
        info.context.require(Scope.IMPORTS_WRITE)
        async with info.context.uow() as uow:
            return ImportJob.from_model(await imports.get(uow=uow, import_id=_import_id(id)))

    @strawberry.field(description="Recent imports, newest first (imports:write).")
    async def imports(self, info: Info, first: int = 20) -> list[ImportJob]:
        info.context.require(Scope.IMPORTS_WRITE)
        async with info.context.uow() as uow:
            rows = await imports.list_recent(uow=uow, limit=max(1, min(first, 100)))
        return [ImportJob.from_model(i) for i in rows]

    @strawberry.field(description="Check every row of an uploaded file with a mapping; "
                                  "writes nothing (imports:write).")
    async def import_dry_run(self, info: Info, import_id: strawberry.ID,
                             mapping: list[ColumnMappingInput] | None = None) -> ImportDryRun:
        principal = info.context.require(Scope.IMPORTS_WRITE)
        async with info.context.uow() as uow:
            imp, checked, invalid, resolved = await imports.dry_run(
                uow=uow, principal=principal, import_id=_import_id(import_id),
                mapping=_mapping(mapping))
        return ImportDryRun(
            total_rows=imp.total_rows, valid_rows=imp.total_rows - invalid, invalid_rows=invalid,
            problems=[ImportProblem(line=p.line, column=p.column, reason=p.reason)
                      for p in checked.problems[:imports.MAX_PROBLEMS]],
            mapping=[ColumnMapping(column=c, field=resolved.get(c)) for c in imp.columns])

    @strawberry.field(description="An export; when done, with a signed download link "
                                  "(exports:read).")
    async def export_job(self, info: Info, id: strawberry.ID) -> ExportJob:
        info.context.require(Scope.EXPORTS_READ)
        async with info.context.uow() as uow:
            e = await exports.get(uow=uow, export_id=decode_id(id, "Export", field="id"))
        return _export(info, e)


@strawberry.type
class ImportsMutation:
    @strawberry.mutation(description="Queue an uploaded import with its mapping; rows with "
                                     "problems are skipped and reported.")
    async def start_import(self, info: Info, input: StartImportInput) -> ImportJobPayload:
        principal = info.context.require_principal()

        async def act() -> ImportJobPayload:
            principal.require(Scope.IMPORTS_WRITE)
            import_id = _import_id(input.import_id)
            async with info.context.uow() as uow:
                imp = await imports.start(uow=uow, principal=principal, import_id=import_id,
                                          mapping=_mapping(input.mapping))
                await outbox.add(uow, info.context.services.outbox, function=imports.JOB,
                                 job_id=imports.job_id(import_id),
                                 tenant_id=str(principal.tenant_id), import_id=str(import_id))
            return ImportJobPayload(import_job=ImportJob.from_model(imp))

        return await payload(ImportJobPayload, act)

    @strawberry.mutation(description="Export companies, contacts, deals or the stage-event log "
                                     "(for a period) as a job (exports:read).")
    async def request_export(self, info: Info, input: RequestExportInput) -> ExportJobPayload:
        principal = info.context.require_principal()

        async def act() -> ExportJobPayload:
            principal.require(Scope.EXPORTS_READ)
            async with info.context.uow() as uow:
                e = await exports.request(uow=uow, principal=principal, kind=input.kind.value,
                                          fmt=input.format.value, period_from=input.from_,
                                          period_to=input.to)
                await outbox.add(uow, info.context.services.outbox, function=exports.JOB,
                                 job_id=exports.job_id(e.id),
                                 tenant_id=str(principal.tenant_id), export_id=str(e.id))
            return ExportJobPayload(export_job=ExportJob.from_model(e))

        return await payload(ExportJobPayload, act)


@strawberry.type
class ImportsSubscription:
    @strawberry.subscription(description="An import's progress (rows done, rows failed) until "
                                          "it is done or failed (imports:write).")
    async def import_progress(self, info: Info,
                              import_id: strawberry.ID) -> AsyncGenerator[ImportJob, None]:
        async for item in errors_mapped(_progress(info, import_id)):
            yield item  # type: ignore[misc]


async def _progress(info: Info, import_id: strawberry.ID) -> AsyncGenerator[ImportJob, None]:
    """The import now, then each change of its progress, until it is done or failed (the
    job writes progress to PostgreSQL; one indexed read per open subscription per tick)."""
    info.context.require(Scope.IMPORTS_WRITE)
    iid = _import_id(import_id)
    last = None
    while True:
        async with info.context.uow() as uow:
            imp = await imports.get(uow=uow, import_id=iid)
        state = (imp.status, imp.rows_done, imp.rows_failed)
        if state != last:
            last = state
            yield ImportJob.from_model(imp)
        if imp.status in ("done", "failed"):
            return
        await asyncio.sleep(PROGRESS_POLL_SECONDS)
