"""GET /exports/{id}?tenant=..&expires=..&signature=..: an export's file, by signed link."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from saas.exports import service

MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


async def download(request: Request) -> Response:
    services: Any = request.app.state.services
    q = request.query_params
    ids = service.check_signature(services.settings.jwt_secret, q.get("tenant", ""),
                                  request.path_params["export_id"], q.get("expires", ""),
                                  q.get("signature", ""))
    if ids is None:
        return PlainTextResponse("this download link is not valid or has expired",
                                 status_code=403)
    found = await service.file(services.db, *ids)
    if found is None:
        return PlainTextResponse("no such export", status_code=404)
    kind, fmt, data = found
    return Response(data, media_type=MEDIA[fmt], headers={
        "content-disposition": f'attachment; filename="{kind}.{fmt}"',
        "cache-control": "private, no-store"})
