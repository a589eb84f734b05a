"""POST /imports?kind=deals&format=csv: upload a file to import (imports:write).

The body is the file itself (read with a byte cap); the answer is the import's id, its
columns and the default mapping, or a typed error. The dry run and the start are GraphQL
(`importDryRun`, `startImport`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from saas.entity_events import gid
from saas.errors import DomainError, LimitExceeded, Unauthenticated
from saas.imports import service
from tenants.scopes import Scope


def _error(status: int, e: DomainError) -> JSONResponse:
    return JSONResponse({"errors": [{"code": e.code, "field": e.field, "message": e.message}]},
                        status_code=status)


async def _body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise LimitExceeded(f"an import file is at most {limit} bytes", field="file")
        chunks.append(chunk)
    return b"".join(chunks)


async def upload(request: Request) -> JSONResponse:
    services: Any = request.app.state.services
    settings = services.settings
    try:
        principal = await services.auth.authenticate(
            authorization=request.headers.get("authorization"),
            api_key=request.headers.get("x-api-key"),
            address=request.client.host if request.client else None)
        if principal is None:
            raise Unauthenticated("authentication required: send 'Authorization: Bearer ...'")
    except Unauthenticated as e:
        return _error(401, e)
    try:
        principal.require(Scope.IMPORTS_WRITE)
        data = await _body(request, settings.import_max_bytes)
        async with services.db.unit_of_work(principal.tenant_id) as uow:
            imp = await service.upload(
                uow=uow, principal=principal, kind=request.query_params.get("kind", ""),
                fmt=request.query_params.get("format", "csv"), data=data,
                max_bytes=settings.import_max_bytes, max_rows=settings.import_max_rows)
    except LimitExceeded as e:
        return _error(413, e)
    except DomainError as e:
        return _error(403 if e.code == "FORBIDDEN" else 422, e)
    return JSONResponse({"import": {
        "id": gid("Import", imp.id), "kind": imp.kind, "format": imp.format,
        "totalRows": imp.total_rows, "columns": imp.columns,
        "mapping": [{"column": c, "field": imp.mapping.get(c)} for c in imp.columns]}},
        status_code=201)
