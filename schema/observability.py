"""A schema extension that names the operation for logs and records its metrics."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from saas.observability import context, tracing
from saas.observability.metrics import GRAPHQL_DURATION, GRAPHQL_ERRORS, operation_label


class Observe(SchemaExtension):
    """Outermost extension: sees errors after DomainErrors gave them their codes."""

    def on_operation(self) -> Iterator[None]:
        start = time.perf_counter()
        # A span per operation when tracing is on (saas/observability/tracing.py); renamed
        # once the document says what the operation is.
        span = (tracing.tracer().start_as_current_span("graphql")
                if tracing.provider() is not None else contextlib.nullcontext())
        with span as current:
            try:
                yield
            finally:
                self._finish(start, current)

    def _finish(self, start: float, span: Any) -> None:
        ec = self.execution_context
        name = _name(ec)
        context.operation.set(name)
        kind = ec.operation_type.value if ec.graphql_document is not None else "unknown"
        if span is not None:
            span.update_name(f"graphql.{kind} {name}")
            span.set_attribute("graphql.operation.name", name)
            span.set_attribute("graphql.operation.type", kind)
        if kind != "subscription":  # a subscription's duration is its lifetime
            GRAPHQL_DURATION.labels(name, kind).observe(time.perf_counter() - start)
        for error in getattr(ec.result, "errors", None) or []:
            code = (error.extensions or {}).get("code", "GRAPHQL_VALIDATION")
            GRAPHQL_ERRORS.labels(str(code)).inc()

    def on_parse(self) -> Iterator[None]:
        yield
        context.operation.set(_name(self.execution_context))


def _name(ec: ExecutionContext) -> str:
    # operation_name raises when the document did not parse; the parse error must win.
    if ec.graphql_document is None:
        return operation_label(None)
    return operation_label(ec.operation_name)
