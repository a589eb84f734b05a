"""JSON logs (python-json-logger) with request id, tenant id and GraphQL operation name.

Only these ids go into log lines: never tokens, API keys, passwords, emails or query
variables. The access log is ours (method, path, status, duration) instead of uvicorn's,
which would add client addresses.
"""

from __future__ import annotations

import logging
import sys

from asgi_correlation_id.context import correlation_id
from pythonjsonlogger.json import JsonFormatter

from saas.observability import context

FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


class RequestContext(logging.Filter):
    """Stamp each record with the current request's ids."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = correlation_id.get()
        record.tenant_id = context.tenant_id.get()
        record.operation = context.operation.get()
        return True


def formatter() -> logging.Formatter:
    return JsonFormatter(FIELDS, rename_fields={"asctime": "time", "levelname": "level",
                                                "name": "logger"})


def configure(level: str = "INFO") -> None:
    """Send every log record, ours and the libraries', as one JSON object per line."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter())
    handler.addFilter(RequestContext())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "arq"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
