"""ASGI middleware: one JSON access-log line and a counter per HTTP request."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from saas.observability import context
from saas.observability.metrics import HTTP_REQUESTS

log = logging.getLogger("saas.access")
QUIET = frozenset({"/healthz", "/readyz", "/metrics"})  # probes would drown the log


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context.tenant_id.set(None)
        context.operation.set(None)
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            HTTP_REQUESTS.labels(scope["method"], str(status)).inc()
            if scope["path"] not in QUIET:
                log.info("request", extra={
                    "method": scope["method"], "path": scope["path"], "status": status,
                    "duration_ms": round((time.perf_counter() - start) * 1000, 2)})
