"""OpenTelemetry span trees (SDK in-memory exporter): a moveDeal request down to its SQL and
its Redis publish, and a requested forecast from the request through the arq enqueue to the
worker's job and the job's SQL, all in one trace."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
from arq.worker import create_worker
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from saas import jobs
from saas.app import create_app
from saas.db import Database, create_engine
from saas.observability import tracing
from saas.settings import Settings
from tests.deals.ops import default_pipeline, stage_ids
from tests.factories import Caller, TenantFactory
from workers.settings import WorkerSettings


@pytest.fixture
async def traced(settings: Settings) -> AsyncIterator[tuple[InMemorySpanExporter, httpx.AsyncClient, Database]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.configure(provider)
    app = create_app(settings.model_copy(update={"db_pool_size": 2, "db_max_overflow": 2}))
    worker_db = Database(create_engine(settings.resolved_app_database_url(), pool_size=2))
    try:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://traced") as client:
                yield exporter, client, worker_db
    finally:
        tracing.configure(None)
        await worker_db.dispose()


def tree(spans: tuple[ReadableSpan, ...], root: ReadableSpan) -> list[ReadableSpan]:
    """`root` and its descendants."""
    children: dict[int, list[ReadableSpan]] = {}
    for s in spans:
        if s.parent is not None:
            children.setdefault(s.parent.span_id, []).append(s)
    out, todo = [], [root]
    while todo:
        span = todo.pop()
        out.append(span)
        todo += children.get(span.context.span_id, [])
    return out


def statements(spans: list[ReadableSpan]) -> list[str]:
    return [str((s.attributes or {}).get("db.statement", "")) for s in spans
            if (s.attributes or {}).get("db.system") == "postgresql"]


def one(spans: Any, name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


async def test_move_deal_span_tree(traced: Any, tenants: TenantFactory) -> None:
    exporter, client, _ = traced
    t = await tenants.create()
    admin = Caller(client, t.admin_caller.headers)
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    deal = (await admin.ok("""mutation($p: ID!) { createDeal(input: {pipelineId: $p, title: "Traced"}) {
        deal { id } } }""", p=pipeline["id"]))["createDeal"]["deal"]
    exporter.clear()
    moved = await admin.ok("""mutation Move($d: ID!, $s: ID!) { moveDeal(input: {dealId: $d,
        toStageId: $s, expectedVersion: 1}) { deal { version } errors { code } } }""",
        d=deal["id"], s=stages["Proposal"])
    assert moved["moveDeal"] == {"deal": {"version": 2}, "errors": []}

    spans = exporter.get_finished_spans()
    server = one([s for s in spans if s.kind == SpanKind.SERVER], "POST /graphql")
    assert server.parent is None
    request = tree(spans, server)
    assert {s.context.trace_id for s in request} == {server.context.trace_id}
    operation = one(request, "graphql.mutation Move")
    assert operation.attributes["graphql.operation.name"] == "Move"
    sql = statements(tree(spans, operation))
    assert any(q.lstrip().startswith("UPDATE deals") for q in sql), sql
    assert any("INSERT INTO stage_events" in q for q in sql), sql
    assert all(s.kind == SpanKind.CLIENT for s in tree(spans, operation)
               if (s.attributes or {}).get("db.system") == "postgresql")
    # After commit, the live event goes out on Redis within the same request.
    publishes = [s for s in request if s.name == "PUBLISH"]
    assert publishes and all(s.attributes.get("db.system") == "redis" for s in publishes)


async def test_forecast_job_continues_the_request_trace(traced: Any, tenants: TenantFactory,
                                                       settings: Settings) -> None:
    exporter, client, worker_db = traced
    t = await tenants.create()
    admin = Caller(client, t.admin_caller.headers)
    pipeline = await default_pipeline(admin)
    exporter.clear()
    requested = await admin.ok("""mutation Forecast($p: ID!) { requestForecast(input: {pipelineId: $p,
        horizonMonths: 3}) { forecast { id status } errors { code } } }""", p=pipeline["id"])
    assert requested["requestForecast"]["errors"] == []

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["db"] = worker_db

    worker = create_worker(WorkerSettings, burst=True, queue_name=settings.arq_queue_name,
                           redis_settings=jobs.redis_settings(settings), on_startup=startup,
                           on_shutdown=None, cron_jobs=[], poll_delay=0.05, handle_signals=False)
    try:
        await worker.main()
    finally:
        await worker.close()

    spans = exporter.get_finished_spans()
    server = one([s for s in spans if s.kind == SpanKind.SERVER], "POST /graphql")
    operation = one(tree(spans, server), "graphql.mutation Forecast")
    assert any("INSERT INTO forecasts" in q for q in statements(tree(spans, operation)))
    enqueue = one(tree(spans, operation), "arq.enqueue run_forecast")
    assert enqueue.kind == SpanKind.PRODUCER
    job = one(spans, "arq.job run_forecast")
    assert job.kind == SpanKind.CONSUMER
    assert job.parent is not None and job.parent.span_id == enqueue.context.span_id
    assert job.context.trace_id == server.context.trace_id  # one trace, request to job
    job_sql = statements(tree(spans, job))
    assert any("SET status = 'running'" in q for q in job_sql), job_sql
    assert any("SET status = 'done'" in q for q in job_sql), job_sql
    status = await admin.ok("query($id: ID!) { node(id: $id) { ... on Forecast { status } } }",
                            id=requested["requestForecast"]["forecast"]["id"])
    assert status["node"]["status"] == "DONE"


def test_tracing_is_off_without_an_endpoint(settings: Settings) -> None:
    assert tracing.provider() is None
    tracing.configure_from_settings(None, "saas-api")
    assert tracing.provider() is None
    app = create_app(settings)
    assert not any("OpenTelemetry" in str(m.cls) for m in app.user_middleware)


def test_spans_are_exported_over_otlp_http_when_an_endpoint_is_set() -> None:
    received: list[tuple[str, str, bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append((self.path, self.headers["content-type"], body))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        tracing.configure_from_settings(f"http://127.0.0.1:{server.server_port}", "saas-api")
        provider = tracing.provider()
        assert provider is not None
        with tracing.span("exported-span", answer=42):
            pass
        assert provider.force_flush(10_000)
    finally:
        tracing.configure(None)  # shuts the provider (and its HTTP session) down
        server.shutdown()
        server.server_close()
    [(path, content_type, body)] = received
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    assert b"exported-span" in body and b"saas-api" in body
