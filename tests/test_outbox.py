"""The job outbox (saas/outbox.py) with real processes: an API server, an arq worker and a
Redis we kill and bring back. A change that needs a job commits with it whatever Redis does;
the worker waits through the outage instead of exiting; the job runs once Redis is back,
exactly once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
from strawberry.relay import GlobalID

from saas.db import Database
from saas.settings import Settings
from tests.conftest import TEST_SECRET
from tests.deals.ops import create_deal, default_pipeline
from tests.factories import TenantFactory
from tests.live.support import ROOT, ApiServer, RedisProcess

REQUEST = """mutation($p: ID!, $h: Int!) { requestForecast(input: {pipelineId: $p, horizonMonths: $h}) {
  forecast { id status } errors { code field message } } }"""
READ = """query($id: ID!) { node(id: $id) { ... on Forecast { status attempts error } } }"""
EXPORT = """mutation { requestExport(input: {kind: DEALS, format: CSV}) {
  exportJob { id status } errors { code message } } }"""
READ_EXPORT = """query($id: ID!) { exportJob(id: $id) { status rows } }"""


def _env(owner_url: str, redis: RedisProcess) -> dict[str, str]:
    return {"ENVIRONMENT": "test", "DATABASE_URL": owner_url, "REDIS_URL": redis.url,
            "JWT_SECRET": TEST_SECRET, "UNSUBSCRIBE_SECRET": TEST_SECRET, "LOG_LEVEL": "INFO",
            "ARQ_QUEUE_NAME": f"arq:outbox:{uuid.uuid4().hex[:8]}",
            "OUTBOX_SWEEP_SECONDS": "0.5", "WEBHOOK_DELIVERY_IN_WORKER": "false",
            "LIVE_CHANNEL_PREFIX": f"outbox-{uuid.uuid4().hex[:8]}"}


async def _until(predicate: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


async def test_a_forecast_requested_while_redis_is_down_completes_once_it_is_back(
    owner_url: str, db: Database, settings: Settings, owner_conn: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    redis = RedisProcess(tmp_path)
    redis.start()
    env = _env(owner_url, redis)
    api = ApiServer(env, tmp_path / "api.log")
    worker_log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "saas.cli", "worker"], cwd=ROOT,
                              env={**os.environ, **env}, stdout=worker_log,
                              stderr=subprocess.STDOUT)
    try:
        api.start()
        api.wait_ready()
        async with httpx.AsyncClient(base_url=api.http, timeout=30) as client:
            t = await TenantFactory(db=db, settings=settings, client=client).create()
            admin = t.admin_caller
            pipeline = await default_pipeline(admin)
            await create_deal(admin, pipeline["id"], "open deal", amount="1000")

            redis.stop()
            started = time.monotonic()
            answer = await admin.gql(REQUEST, p=pipeline["id"], h=2)
            took = time.monotonic() - started
            exported = await admin.gql(EXPORT)
            # The client gets its forecast and its export, not INTERNAL, and soon.
            assert "errors" not in answer, answer
            payload = answer["data"]["requestForecast"]
            assert payload["errors"] == [] and payload["forecast"]["status"] == "QUEUED"
            assert exported["data"]["requestExport"]["errors"] == [], exported
            assert took < 3.0, f"the request waited {took:.1f} s on a Redis that is down"
            forecast_id = payload["forecast"]["id"]
            export_id = exported["data"]["requestExport"]["exportJob"]["id"]

            # Both jobs wait in PostgreSQL; the sweeper keeps failing; the worker lives on.
            waiting = await owner_conn.fetch(
                "SELECT function, job_id FROM job_outbox WHERE tenant_id = $1 ORDER BY id",
                t.id)
            assert [r["function"] for r in waiting] == ["run_forecast", "run_export"]
            await asyncio.sleep(3)
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            assert (await admin.ok(READ, id=forecast_id))["node"]["status"] == "QUEUED"
            # An identical request meanwhile is the same pending forecast, not a second one.
            again = (await admin.ok(REQUEST, p=pipeline["id"], h=2))["requestForecast"]
            assert again["forecast"]["id"] == forecast_id

            redis.start()

            async def done() -> bool:
                node = (await admin.ok(READ, id=forecast_id))["node"]
                export = (await admin.ok(READ_EXPORT, id=export_id))["exportJob"]
                return bool(node["status"] == "DONE" and export["status"] == "DONE")

            await _until(done, 60, "the forecast and the export never completed")
            await asyncio.sleep(2)  # a few more sweeps and polls: nothing runs twice
            node = (await admin.ok(READ, id=forecast_id))["node"]
            assert (node["status"], node["attempts"], node["error"]) == ("DONE", 1, None)
            assert await owner_conn.fetchval(
                "SELECT count(*) FROM forecasts WHERE tenant_id = $1", t.id) == 1
            assert await owner_conn.fetchval(
                "SELECT count(*) FROM entity_events WHERE tenant_id = $1 "
                "AND kind = 'forecast.completed'", t.id) == 1
            assert await owner_conn.fetchval(
                "SELECT count(*) FROM job_outbox WHERE tenant_id = $1", t.id) == 0
            assert worker.poll() is None
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)
        worker_log.close()
        api.stop()
        redis.stop()
    log = (tmp_path / "worker.log").read_text()
    assert "outbox sweep failed" in log  # the outage was real, and seen


async def test_a_rolled_back_change_leaves_no_job(
    db: Database, tenants: TenantFactory, owner_conn: asyncpg.Connection,
) -> None:
    """The outbox row is part of the change's transaction: a failed change enqueues nothing."""
    from saas import outbox

    class Boom(Exception):
        pass

    t = await tenants.create()
    try:
        async with db.unit_of_work(t.id) as uow:
            await outbox.add(uow, None, function="run_export", job_id="export:x", export_id="x",
                             tenant_id=str(t.id))
            raise Boom
    except Boom:
        pass
    assert await owner_conn.fetchval(
        "SELECT count(*) FROM job_outbox WHERE tenant_id = $1", t.id) == 0


async def test_a_job_redis_lost_is_enqueued_again_but_not_while_the_outbox_holds_jobs(
    db: Database, tenants: TenantFactory, settings: Settings, owner_conn: asyncpg.Connection,
) -> None:
    """`requeue_stale`: a forecast still queued after two minutes with nothing in the outbox
    (its job was relayed, then Redis lost it) is enqueued again under its job id."""
    from arq.jobs import Job

    from saas import jobs, outbox
    from saas.forecasting import service
    from workers.outbox import requeue_stale

    t = await tenants.create()
    pipeline = await default_pipeline(t.admin_caller)
    async with db.unit_of_work(t.id) as uow:
        record = await service.request(
            uow=uow, principal=t.admin, relay=None, enqueue=False,
            pipeline_id=uuid.UUID(GlobalID.from_id(pipeline["id"]).node_id), horizon_months=1,
            team_id=None, owner_id=None)
    await owner_conn.execute(
        "UPDATE forecasts SET created_at = now() - interval '3 minutes' WHERE id = $1",
        record.id)
    # A queue of its own: the sweep also enqueues other tests' tenants' stale records.
    private = settings.model_copy(update={"arq_queue_name": f"arq:stale:{uuid.uuid4().hex}"})
    pool = await jobs.connect(private)
    job = Job(service.job_id(record.id), pool, _queue_name=private.arq_queue_name,
              _deserializer=jobs.deserialize)
    try:
        async with db.unit_of_work(t.id) as uow:  # a job still waiting in the outbox
            await outbox.add(uow, None, function="run_export", job_id="export:waiting")
        await requeue_stale({"db": db, "redis": pool})
        assert await job.info() is None  # the outbox held this tenant's jobs: not yet
        await owner_conn.execute("DELETE FROM job_outbox WHERE tenant_id = $1", t.id)
        assert await requeue_stale({"db": db, "redis": pool}) >= 1
        info = await job.info()
        assert info is not None and info.function == service.JOB
        assert (info.kwargs["tenant_id"], info.kwargs["forecast_id"]) == (str(t.id),
                                                                          str(record.id))
    finally:
        for queued in await pool.zrange(private.arq_queue_name, 0, -1):
            await pool.delete(f"arq:job:{queued.decode()}")
        await pool.delete(private.arq_queue_name)
        await pool.aclose()
