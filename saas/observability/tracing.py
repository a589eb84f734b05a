"""OpenTelemetry traces: one trace from a request through its SQL to the jobs it enqueued.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set (then spans go out over OTLP/HTTP in
batches) or a test installs its own provider with `configure(provider)`. When on:

- the API wraps its ASGI app (a server span per request, opentelemetry-instrumentation-asgi)
  and each GraphQL operation gets a span `graphql.<type> <name>` (schema/observability.py);
- every SQLAlchemy engine made with saas.db.create_engine (while tracing is on) gets a span
  per statement, and
  Redis commands (pub/sub, the arq queue) get a span each;
- enqueuing an arq job (saas.jobs.serialize) opens a PRODUCER span and puts its context in
  the job's kwargs (`otel_context`); the worker's `traced` wrapper removes it and runs the
  job in a CONSUMER span that is that span's child, so the job's SQL is in the same trace.

The provider is this module's, not OpenTelemetry's global one: a test can switch tracing on
and off again, and nothing else in the process is affected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Tracer

CONTEXT_KWARG = "otel_context"
_provider: TracerProvider | None = None
_redis_instrumented = False

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def configure(provider: TracerProvider | None) -> None:
    """Switch tracing on with `provider` (None: off); the previous provider is flushed and
    shut down. Redis is instrumented process-wide while tracing is on."""
    global _provider, _redis_instrumented
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    if _redis_instrumented:
        RedisInstrumentor().uninstrument()
        _redis_instrumented = False
    old, _provider = _provider, provider
    if old is not None and old is not provider:
        old.shutdown()
    if provider is not None:
        RedisInstrumentor().instrument(tracer_provider=provider)
        _redis_instrumented = True


def configure_from_settings(endpoint: str | None, service: str) -> None:
    """OTLP/HTTP export to `endpoint` (OTEL_EXPORTER_OTLP_ENDPOINT); nothing when unset."""
    if not endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
    configure(provider)


def provider() -> TracerProvider | None:
    return _provider


def tracer() -> Tracer:
    if _provider is None:
        return trace.NoOpTracer()
    return _provider.get_tracer("saas")


def instrument_engine(engine: Any) -> None:
    """A CLIENT span per SQL statement of this (async) engine, when tracing is on.

    SQLAlchemy's own events, not opentelemetry-instrumentation-sqlalchemy: that one also
    patches create_engine process-wide and instruments only the first engine it is given.
    SQLAlchemy runs these hooks in a greenlet that shares the caller's context, so each
    statement's span is a child of the span the awaiting code is in."""
    if _provider is None:
        return
    from sqlalchemy import event

    sql_tracer = _provider.get_tracer("saas.sql")
    sync = engine.sync_engine

    @event.listens_for(sync, "before_cursor_execute")
    def _start(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        span = sql_tracer.start_span(verb, kind=SpanKind.CLIENT, attributes={
            "db.system": "postgresql", "db.statement": statement[:2000],
            "db.name": str(sync.url.database or "")})
        context._otel_span = span

    @event.listens_for(sync, "after_cursor_execute")
    def _end(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
             executemany: bool) -> None:
        span = getattr(context, "_otel_span", None)
        if span is not None:
            span.end()

    @event.listens_for(sync, "handle_error")
    def _error(context: Any) -> None:
        span = getattr(context.execution_context, "_otel_span", None)
        if span is not None:
            span.record_exception(context.original_exception)
            span.set_status(trace.Status(trace.StatusCode.ERROR))
            span.end()


def middleware() -> list[Any]:
    """The outermost ASGI middleware: a server span per request (HTTP and websocket)."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from starlette.middleware import Middleware

    return [Middleware(OpenTelemetryMiddleware, tracer_provider=_provider)]


def inject_job_context(job: dict[str, Any]) -> None:
    """Called with an arq job payload being serialized: a PRODUCER span for the enqueue, whose
    context rides in the kwargs (only when a trace is under way)."""
    if _provider is None or "r" in job or not isinstance(job.get("k"), dict):
        return
    with tracer().start_as_current_span(f"arq.enqueue {job.get('f')}", kind=SpanKind.PRODUCER,
                                        attributes={"messaging.system": "arq"}):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    if carrier:
        job["k"] = {**job["k"], CONTEXT_KWARG: carrier}


def traced(job: F) -> F:
    """Run an arq job in a CONSUMER span, continuing the trace that enqueued it (if any)."""
    name = job.__name__

    @wraps(job)
    async def wrapper(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        carrier = kwargs.pop(CONTEXT_KWARG, None)
        parent = propagate.extract(carrier) if isinstance(carrier, dict) else None
        with tracer().start_as_current_span(
                f"arq.job {name}", context=parent, kind=SpanKind.CONSUMER,
                attributes={"messaging.system": "arq", "arq.job_id": str(ctx.get("job_id")),
                            "arq.job_try": int(ctx.get("job_try") or 1)}):
            return await job(ctx, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    with tracer().start_as_current_span(name, attributes=attributes):
        yield
