"""Metrics at /metrics after requests, moves, live deliveries and jobs; JSON logs with ids."""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any

from saas.db import Database
from saas.live import stream as live
from saas.observability import logs
from saas.settings import Settings
from tests.deals.ops import create_deal, default_pipeline, move, stage_ids
from tests.factories import Caller, TenantFactory
from tests.forecasting.test_jobs import REQUEST, run_burst_worker


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", re.M)
    total = 0.0
    for match in pattern.finditer(metrics):
        if all(part in (match.group(1) or "") for part in wanted.split(",") if part):
            total += float(match.group(2))
    return total


async def test_metrics_cover_operations_errors_live_and_jobs(
    tenants: TenantFactory, app: Any, settings: Settings, db: Database,
) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    before = (await tenants.client.get("/metrics")).text
    pipeline = await default_pipeline(admin)
    deal = await create_deal(admin, pipeline["id"], "measured")
    await move(admin, deal["id"], stage_ids(pipeline)["Proposal"], 1)
    await admin.gql("query BoardForMetrics($p: ID!) { board(pipelineId: $p) { pipelineName } }",
                    p=pipeline["id"])
    await Caller(tenants.client, {}).gql("query Anonymous { me { tenantId } }")  # UNAUTHENTICATED
    hub = app.state.services.hub
    delivered = []
    events = live.stream(hub, t.admin, None, 0)
    async for item in events:
        delivered.append(item)
        if len(delivered) == 2:
            open_now = (await tenants.client.get("/metrics")).text
            break
    await events.aclose()
    await admin.ok(REQUEST, p=pipeline["id"], h=1)
    await run_burst_worker(settings, db)
    after = (await tenants.client.get("/metrics")).text

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("saas_graphql_operation_duration_seconds_count",
                operation="BoardForMetrics", type="query") == 1
    assert grew("saas_graphql_errors_total", code="UNAUTHENTICATED") == 1
    assert sample(open_now, "saas_ws_active_subscriptions") >= 1
    assert sample(after, "saas_ws_active_subscriptions") == sample(before,
                                                                   "saas_ws_active_subscriptions")
    assert grew("saas_live_events_delivered_total") >= 2
    assert grew("saas_job_duration_seconds_count", job="run_forecast") == 1
    assert grew("saas_job_failures_total", job="run_forecast") == 0
    assert grew("saas_http_requests_total", method="POST", status="200") >= 5


async def test_logs_are_json_with_request_tenant_and_operation_but_no_secrets(
    tenants: TenantFactory,
) -> None:
    t = await tenants.create()
    caller = t.admin_caller
    token = caller.headers["Authorization"].split()[1]
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logs.formatter())
    handler.addFilter(logs.RequestContext())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        response = await tenants.client.post(
            "/graphql", headers={**caller.headers, "X-Request-ID": "0123456789abcdef0123456789abcdef"},
            json={"query": "query WhoAmI { me { user { email } } }"})
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    access = [line for line in lines if line["message"] == "request"]

    assert response.headers["X-Request-ID"] == "0123456789abcdef0123456789abcdef"
    assert len(access) == 1
    assert {k: access[0][k] for k in ("request_id", "tenant_id", "operation", "method", "path",
                                      "status", "level", "logger")} == {
        "request_id": "0123456789abcdef0123456789abcdef", "tenant_id": str(t.id),
        "operation": "WhoAmI", "method": "POST", "path": "/graphql", "status": 200,
        "level": "INFO", "logger": "saas.access"}
    assert isinstance(access[0]["duration_ms"], float)
    text = buffer.getvalue()
    assert token not in text and t.admin_email not in text
