"""Forecast jobs on a real Redis queue with real arq workers (in-process and as processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import asyncpg
import numpy as np
from arq.worker import create_worker
from strawberry.relay import GlobalID

from saas import jobs
from saas.db import Database
from saas.forecasting import service
from saas.forecasting.model import Stage, StageKind, prior_matrix
from saas.forecasting.planning import won_by_horizon
from saas.settings import Settings
from tests.deals.ops import create_deal, default_pipeline, move, stage_ids
from tests.factories import TenantFactory
from workers.forecast import run_forecast
from workers.settings import WorkerSettings

REQUEST = """mutation($p: ID!, $h: Int!) { requestForecast(input: {pipelineId: $p, horizonMonths: $h}) {
  forecast { id status } errors { code field message } } }"""
READ = """query($id: ID!) { node(id: $id) { ... on Forecast { status attempts error result } } }"""


def raw_id(global_id: str) -> uuid.UUID:
    return uuid.UUID(GlobalID.from_id(global_id).node_id)


async def run_burst_worker(settings: Settings, db: Database) -> None:
    async def startup(ctx: dict[str, Any]) -> None:
        ctx["db"] = db

    worker = create_worker(WorkerSettings, burst=True, queue_name=settings.arq_queue_name,
                           redis_settings=jobs.redis_settings(settings), on_startup=startup,
                           on_shutdown=None, cron_jobs=[], poll_delay=0.05,
                           handle_signals=False)
    try:
        await worker.main()
    finally:
        await worker.close()


async def test_requested_forecast_is_computed_by_a_worker_from_stage_probabilities(
    tenants: TenantFactory, settings: Settings, db: Database,
) -> None:
    """A new tenant (thin history): the forecast is the prior, built from stage probabilities."""
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    await create_deal(admin, pipeline["id"], "a", amount="1000")
    d = await create_deal(admin, pipeline["id"], "b", amount="500", currency="EUR")
    await move(admin, d["id"], stages["Proposal"], 1)

    requested = (await admin.ok(REQUEST, p=pipeline["id"], h=3))["requestForecast"]
    assert requested["errors"] == [] and requested["forecast"]["status"] == "QUEUED"
    await run_burst_worker(settings, db)
    done = (await admin.ok(READ, id=requested["forecast"]["id"]))["node"]

    assert (done["status"], done["attempts"], done["error"]) == ("DONE", 1, None)
    result = done["result"]
    assert result["openDeals"] == 2
    # With no whole period of history, the matrix is exactly the prior.
    model_stages = [Stage(s["name"], StageKind[s["kind"]], float(p)) for s, p in zip(
        pipeline["stages"], [0.05, 0.10, 0.20, 0.40, 0.60, 1, 1, 0], strict=True)]
    prior = prior_matrix(model_stages)
    assert np.allclose(np.array(result["matrix"]), prior, atol=1e-6)
    won = np.array([s.kind == StageKind.WON for s in model_stages])
    p_won = won_by_horizon(prior, won, 3)  # (stage, h)
    lead, proposal = 0, 3
    for h in (1, 2, 3):
        row = result["horizons"][h - 1]
        assert row["expectedWonCount"] == np.float64(p_won[lead, h] + p_won[proposal, h]).item()
        amounts = {a["currency"]: a["amount"] for a in row["expectedWonAmount"]}
        assert amounts["USD"] == np.float64(1000 * p_won[lead, h]).item()
        assert amounts["EUR"] == np.float64(500 * p_won[proposal, h]).item()
        assert 0 <= row["wonCountLow"] <= row["expectedWonCount"] <= row["wonCountHigh"]
    # The prior moves one stage per period at most: a new lead needs five steps to win, so
    # not within three months; a Proposal deal (two steps away) can.
    assert p_won[lead, 3] == 0
    assert p_won[proposal, 1] == 0 < p_won[proposal, 2] < p_won[proposal, 3]


async def test_same_request_while_queued_runs_once(
    tenants: TenantFactory, settings: Settings, db: Database, redis: Any,
) -> None:
    t = await tenants.create()
    pipeline = await default_pipeline(t.admin_caller)

    first, second = await asyncio.gather(
        t.admin_caller.ok(REQUEST, p=pipeline["id"], h=2),
        t.admin_caller.ok(REQUEST, p=pipeline["id"], h=2))
    ids = {first["requestForecast"]["forecast"]["id"], second["requestForecast"]["forecast"]["id"]}
    queued = await redis.zrange(settings.arq_queue_name, 0, -1)
    await run_burst_worker(settings, db)
    async with db.unit_of_work(t.id) as uow:
        records = await service.list_for_pipeline(
            uow=uow, pipeline_id=raw_id(pipeline["id"]), limit=10)

    assert len(ids) == 1
    assert len([q for q in queued if q.decode().startswith("forecast:")]) == 1
    assert [(r.status, r.attempts) for r in records] == [("done", 1)]


async def test_a_failing_forecast_is_marked_failed_and_others_complete(
    tenants: TenantFactory, settings: Settings, db: Database, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    good = await default_pipeline(admin)
    broken = (await admin.ok("""mutation { createSegment(input: {name: "Broken", stages: [
      {name: "Only"}, {name: "Won", kind: WON, probability: "1"},
      {name: "Lost", kind: LOST, probability: "0"}]}) { segment { pipeline { id } } } }"""
    ))["createSegment"]["segment"]["pipeline"]
    bad = (await admin.ok(REQUEST, p=broken["id"], h=1))["requestForecast"]["forecast"]["id"]
    ok = (await admin.ok(REQUEST, p=good["id"], h=1))["requestForecast"]["forecast"]["id"]
    # Corrupt configuration the API cannot produce: the pipeline's only open stage turns won.
    await owner_conn.execute(
        "UPDATE stages SET kind = 'won' WHERE tenant_id = $1 AND pipeline_id = $2 "
        "AND kind = 'open'",
        t.id, raw_id(broken["id"]))

    await run_burst_worker(settings, db)
    failed = (await admin.ok(READ, id=bad))["node"]
    done = (await admin.ok(READ, id=ok))["node"]

    assert failed["status"] == "FAILED"
    assert failed["error"] == ("the forecast could not be computed: "
                               "the pipeline has no open stage to forecast")
    assert failed["result"] is None
    assert done["status"] == "DONE"


async def test_job_for_one_tenant_reads_only_that_tenant(
    tenants: TenantFactory, settings: Settings, db: Database,
) -> None:
    a = await tenants.create()
    b = await tenants.create()
    a_pipeline = await default_pipeline(a.admin_caller)
    b_pipeline = await default_pipeline(b.admin_caller)
    await create_deal(a.admin_caller, a_pipeline["id"], "A1")
    for i in range(5):
        await create_deal(b.admin_caller, b_pipeline["id"], f"B{i}")
    a_forecast = (await a.admin_caller.ok(REQUEST, p=a_pipeline["id"], h=1)
                  )["requestForecast"]["forecast"]["id"]
    a_id = str(raw_id(a_forecast))

    # A job naming tenant B cannot even see A's forecast: under B's RLS it does not exist.
    crossed = await run_forecast({"db": db}, tenant_id=str(b.id), forecast_id=a_id)
    await run_burst_worker(settings, db)
    result = (await a.admin_caller.ok(READ, id=a_forecast))["node"]["result"]

    assert crossed == "missing"
    assert result["openDeals"] == 1
    assert {s["id"] for s in result["stages"]} == {str(raw_id(s["id"]))
                                                   for s in a_pipeline["stages"]}


async def test_worker_killed_mid_job_is_retried_and_stores_one_result(
    tenants: TenantFactory, settings: Settings, owner_url: str, owner_conn: asyncpg.Connection,
) -> None:
    """SIGKILL a real worker process while it is inside the job (blocked on the forecast row,
    which the test holds locked); a second worker retries it after the in-progress key
    expires, and the forecast ends done exactly once."""
    t = await tenants.create()
    pipeline = await default_pipeline(t.admin_caller)
    await create_deal(t.admin_caller, pipeline["id"], "x", amount="10")
    gid = (await t.admin_caller.ok(REQUEST, p=pipeline["id"], h=1))["requestForecast"]["forecast"]["id"]
    forecast_id = raw_id(gid)
    env = {**os.environ, "ENVIRONMENT": "test", "DATABASE_URL": owner_url,
           "REDIS_URL": settings.redis_url or "", "ARQ_QUEUE_NAME": settings.arq_queue_name,
           "JOB_TIMEOUT_SECONDS": "2", "HOSTNAME": f"test-{uuid.uuid4().hex[:6]}"}
    lock = await asyncpg.connect(owner_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        tx = lock.transaction()
        await tx.start()
        await lock.execute("SELECT 1 FROM forecasts WHERE id = $1 FOR UPDATE", forecast_id)
        first = subprocess.Popen([sys.executable, "-m", "saas.cli", "worker"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until the worker is blocked on our lock
            waiting = await owner_conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'UPDATE forecasts SET status%'")
            if waiting:
                break
            await asyncio.sleep(0.1)
        assert waiting == 1
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        await tx.rollback()
    finally:
        await lock.close()
    second = subprocess.Popen([sys.executable, "-m", "saas.cli", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 40
        status = None
        while time.monotonic() < deadline:
            status = await owner_conn.fetchval("SELECT status FROM forecasts WHERE id = $1",
                                               forecast_id)
            if status == "done":
                break
            await asyncio.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=20)
    rows = await owner_conn.fetch("SELECT status, attempts, result IS NOT NULL AS has_result "
                                  "FROM forecasts WHERE tenant_id = $1", t.id)
    assert [dict(r) for r in rows] == [{"status": "done", "attempts": 1, "has_result": True}]


async def test_forecast_updated_subscription_pushes_status_until_done(
    tenants: TenantFactory, settings: Settings, db: Database, app: Any,
) -> None:
    from schema.context import Context
    from schema.root import build_schema

    a = await tenants.create()
    b = await tenants.create()
    pipeline = await default_pipeline(a.admin_caller)
    gid = (await a.admin_caller.ok(REQUEST, p=pipeline["id"], h=1)
           )["requestForecast"]["forecast"]["id"]
    schema = build_schema(settings)
    query = "subscription($id: ID!) { forecastUpdated(id: $id) { status result } }"

    async def statuses(principal: Any) -> list[Any]:
        context = Context(services=app.state.services, principal=principal)
        stream = await schema.subscribe(query, variable_values={"id": gid},
                                        context_value=context)
        seen: list[Any] = []
        worker = None
        async for result in stream:  # type: ignore[union-attr]
            if result.errors:
                return [e.extensions for e in result.errors]
            seen.append(result.data["forecastUpdated"]["status"])
            if worker is None:
                worker = asyncio.create_task(run_burst_worker(settings, db))
        if worker is not None:
            await worker
        return seen

    mine = await statuses(a.admin)
    theirs = await statuses(b.admin)

    assert mine[0] == "QUEUED" and mine[-1] == "DONE"
    assert set(mine) <= {"QUEUED", "RUNNING", "DONE"} and len(mine) == len(set(mine))
    assert theirs == [{"code": "NOT_FOUND", "field": "id"}]
