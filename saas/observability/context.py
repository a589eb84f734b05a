"""Per-request values every log line carries (contextvars follow the request's tasks)."""

from __future__ import annotations

from contextvars import ContextVar

tenant_id: ContextVar[str | None] = ContextVar("tenant_id", default=None)
operation: ContextVar[str | None] = ContextVar("operation", default=None)
