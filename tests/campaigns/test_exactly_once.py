"""One message per (enrollment, step): concurrent jobs, and a worker killed mid-send."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg

from saas import jobs
from saas.campaigns import engine
from saas.campaigns.mailer import SmtpMailer
from saas.db import Database
from saas.settings import Settings
from tests.campaigns.support import (
    Clock,
    SmtpServer,
    contact,
    create_campaign,
    enrollments,
    run_jobs,
)
from tests.deals.ops import create_deal, default_pipeline, move, stage_ids
from tests.factories import TenantFactory, TenantHandle

STEPS = [{"delayMinutes": 0, "subject": "Welcome {{ contact.name }}", "body": "Step one."},
         {"delayDays": 2, "subject": "Checking in", "body": "Step two for {{ deal.title }}."}]


async def _won_deals(tenants: TenantFactory, n: int) -> tuple[TenantHandle, list[str]]:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    await create_campaign(admin, name="Welcome", trigger="DEAL_WON", steps=STEPS)
    addresses = []
    for i in range(n):
        address = f"c{i}@{t.slug}.test"
        c = await contact(admin, f"Client {i}", address)
        deal = await create_deal(admin, pipeline["id"], f"Deal {i}", contactId=c)
        await move(admin, deal["id"], stages["Closing"], 1)
        addresses.append(address)
    return t, addresses


async def test_jobs_run_twice_concurrently_send_each_step_once(
    tenants: TenantFactory, mail_settings: Settings, db: Database, smtp: SmtpServer,
    clock: Clock,
) -> None:
    t, addresses = await _won_deals(tenants, 6)
    clock.advance(minutes=1)  # the wins happened just now (database time)
    # Two arq jobs for the same tenant and minute (distinct ids, as if two fan-outs raced),
    # executed concurrently by one worker, plus three direct runs racing them.
    await asyncio.gather(
        run_jobs(mail_settings, db, clock, t.id, copies=2),
        *[engine.tick(db, mail_settings, t.id, clock(), SmtpMailer(mail_settings))
          for _ in range(3)])
    clock.advance(days=2, minutes=1)
    await asyncio.gather(
        run_jobs(mail_settings, db, clock, t.id, copies=3),
        *[engine.tick(db, mail_settings, t.id, clock(), SmtpMailer(mail_settings))
          for _ in range(2)])
    await run_jobs(mail_settings, db, clock, t.id)

    sent = Counter((r.rcpt_tos[0], r.subject) for r in smtp.handler.received)
    assert sent == Counter({(a, s): 1 for i, a in enumerate(addresses)
                            for s in (f"Welcome Client {i}", "Checking in")})
    rows = await enrollments(t.admin_caller)
    assert {e["status"] for e in rows} == {"COMPLETED"}
    assert sorted(len(e["sends"]) for e in rows) == [2] * 6


async def test_the_fanout_enqueues_one_job_per_tenant_and_minute(
    tenants: TenantFactory, settings: Settings, db: Database, redis: object, clock: Clock,
) -> None:
    from workers.campaigns import campaigns_fanout

    t = await tenants.create()
    pool = await jobs.connect(settings)
    try:
        ctx = {"db": db, "redis": pool, "clock": clock}
        await campaigns_fanout(ctx)
        await campaigns_fanout(ctx)  # a second fan-out for the same minute adds nothing
        minute = clock().replace(second=0, microsecond=0).isoformat()
        queued = [q.decode() for q in await pool.zrange(settings.arq_queue_name, 0, -1)]
        ours = [q for q in queued if q == f"campaigns:{t.id}:{minute}"]
        assert len(ours) == 1
        # Leave the queue clean for other tests: drop what the fan-out enqueued.
        for q in queued:
            if q.startswith("campaigns:"):
                await pool.zrem(settings.arq_queue_name, q)
                await pool.delete(f"arq:job:{q}")
    finally:
        await pool.aclose()


def _worker(owner_url: str, settings: Settings, smtp: SmtpServer) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ENVIRONMENT": "test", "DATABASE_URL": owner_url,
           "REDIS_URL": settings.redis_url or "", "ARQ_QUEUE_NAME": settings.arq_queue_name,
           "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port),
           "CAMPAIGN_SEND_LEASE_SECONDS": "60", "JOB_TIMEOUT_SECONDS": "30",
           "HOSTNAME": f"test-{uuid.uuid4().hex[:6]}"}
    return subprocess.Popen([sys.executable, "-m", "saas.cli", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _enqueue(settings: Settings, tenant_id: uuid.UUID, at: str | None) -> str:
    pool = await jobs.connect(settings)
    job_id = f"test-campaigns:{uuid.uuid4().hex}"
    try:
        await pool.enqueue_job("campaigns_tenant", tenant_id=str(tenant_id), at=at,
                               _job_id=job_id)
    finally:
        await pool.aclose()
    return job_id


async def _forget(settings: Settings, job_id: str) -> None:
    """Drop the killed worker's job (arq would retry it once its in-progress key expires),
    so it cannot run later inside another test."""
    pool = await jobs.connect(settings)
    try:
        await pool.zrem(settings.arq_queue_name, job_id)
        await pool.delete(f"arq:job:{job_id}", f"arq:in-progress:{job_id}",
                          f"arq:retry:{job_id}")
    finally:
        await pool.aclose()


async def _wait_for(predicate: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def _kill_mid_send(block_in: str, tenants: TenantFactory, settings: Settings,
                         owner_url: str, owner_conn: asyncpg.Connection, db: Database,
                         smtp: SmtpServer, clock: Clock) -> tuple[list[dict[str, object]], str | None]:
    t, [address] = await _won_deals(tenants, 1)
    await engine.enroll_from_events(db, t.id, clock(), engine.TickResult())
    smtp.handler.block_in = block_in
    first = _worker(owner_url, settings, smtp)
    try:
        killed_job = await _enqueue(settings, t.id, None)
        # The worker is inside the SMTP conversation, held by the server: kill it there.
        await _wait_for(lambda: asyncio.to_thread(smtp.handler.blocked.wait, 0.05))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=10)
    smtp.handler.block_in = None
    smtp.handler.release.set()
    await _forget(settings, killed_job)
    status = await owner_conn.fetchval(
        "SELECT status FROM campaign_sends WHERE tenant_id = $1", t.id)
    # A new worker, a job for a minute past the claim's lease (60 s in the worker's settings).
    second = _worker(owner_url, settings, smtp)
    try:
        later = (clock() + timedelta(minutes=2)).isoformat()
        await _enqueue(settings, t.id, later)

        async def settled() -> bool:
            row = await owner_conn.fetchval(
                "SELECT status FROM campaign_sends WHERE tenant_id = $1", t.id)
            return row in ("sent", "unconfirmed")

        await _wait_for(settled)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=20)
    rows = [dict(r) for r in await owner_conn.fetch(
        "SELECT s.step, s.status, s.attempts, e.next_step FROM campaign_sends s "
        "JOIN campaign_enrollments e ON e.tenant_id = s.tenant_id AND e.id = s.enrollment_id "
        "WHERE s.tenant_id = $1", t.id)]
    assert len(smtp.handler.for_recipient(address)) == 1
    return rows, status


async def test_worker_killed_during_data_never_sends_again(
    tenants: TenantFactory, settings: Settings, owner_url: str,
    owner_conn: asyncpg.Connection, db: Database, smtp: SmtpServer, clock: Clock,
) -> None:
    """SIGKILL while the server holds the DATA reply: the message has reached the server,
    the worker never learnt it. The next worker must not send it again."""
    rows, status_after_kill = await _kill_mid_send("data", tenants, settings, owner_url,
                                                   owner_conn, db, smtp, clock)
    assert status_after_kill == "delivering"
    assert rows == [{"step": 0, "status": "unconfirmed", "attempts": 1, "next_step": 1}]


async def test_worker_killed_before_handing_over_is_sent_once_by_the_next(
    tenants: TenantFactory, settings: Settings, owner_url: str,
    owner_conn: asyncpg.Connection, db: Database, smtp: SmtpServer, clock: Clock,
) -> None:
    """SIGKILL during RCPT (claimed, nothing handed over): after the lease another worker
    re-claims the send and delivers it, once."""
    rows, status_after_kill = await _kill_mid_send("rcpt", tenants, settings, owner_url,
                                                   owner_conn, db, smtp, clock)
    assert status_after_kill == "claimed"
    assert rows == [{"step": 0, "status": "sent", "attempts": 2, "next_step": 1}]
