"""Nothing lost: a worker killed mid-delivery, a 410, a slow receiver beside a fast one,
and tenants that never see each other's events."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import threading
from collections import Counter

import asyncpg

from saas.settings import Settings
from saas.webhooks.runner import Runner
from tests.deals.ops import create_deal, default_pipeline, move, stage_ids
from tests.factories import TenantFactory
from tests.webhooks.support import (
    ENDPOINTS,
    Receiver,
    create_endpoint,
    first_arrivals,
    verify,
    wait_for,
)
from tests.webhooks.test_delivery import statuses

RESUME = """mutation($id: ID!) { resumeWebhookEndpoint(input: {id: $id}) {
  endpoint { status disabledReason } errors { code message } } }"""


def _worker(owner_url: str, settings: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ENVIRONMENT": "test", "DATABASE_URL": owner_url,
           "REDIS_URL": settings.redis_url or "", "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
           "WEBHOOK_LEASE_SECONDS": "2", "WEBHOOK_POLL_SECONDS": "0.2",
           "WEBHOOK_BACKOFF_BASE_SECONDS": "0.2", "WEBHOOK_BACKOFF_MAX_SECONDS": "1",
           "DB_POOL_SIZE": "3"}
    return subprocess.Popen([sys.executable, "-m", "saas.cli", "webhooks"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_worker_sigkilled_mid_delivery_loses_nothing_and_resends_with_the_same_id(
    hook_tenants: TenantFactory, receiver: Receiver, owner_url: str, settings: Settings,
    owner_conn: asyncpg.Connection,
) -> None:
    t = await hook_tenants.create()
    admin = t.admin_caller
    _, secret = await create_endpoint(admin, receiver.url, ["deal.*"])
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    deals = [await create_deal(admin, pipeline["id"], f"d{i}") for i in range(3)]
    for d in deals:
        assert (await move(admin, d["id"], stages["Proposal"], 1))["errors"] == []
    events = 6
    receiver.hold = threading.Event()  # requests wait inside the receiver
    first = _worker(owner_url, settings)
    try:
        await wait_for(lambda: receiver.in_flight >= 1, 30, "a delivery in flight")
        await asyncio.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    held = receiver.in_flight
    receiver.hold.set()  # the receiver finishes what it had; the dead worker never hears it
    await wait_for(lambda: receiver.in_flight == 0, 10, "the held requests")
    interrupted = receiver.ids()
    assert len(interrupted) == held >= 1
    second = _worker(owner_url, settings)
    try:
        await wait_for(lambda: len(receiver.ids()) == events, 40, "every event after restart")
        found = await statuses(owner_conn, t.id, {"delivered": events}, seconds=20)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
        await owner_conn.execute("UPDATE webhook_endpoints SET status = 'paused' "
                                 "WHERE tenant_id = $1", t.id)
    assert found == {"delivered": events}
    received = receiver.snapshot()
    assert len({r.id for r in received}) == events  # distinct webhook-ids == events
    counts = Counter(r.id for r in received)
    # The requests the killed worker had in flight came again, with the same webhook-id.
    assert all(counts[i] >= 2 for i in interrupted)
    seqs = sorted(verify(secret, r)["data"]["seq"] for r in first_arrivals(received))
    assert seqs == list(range(seqs[0], seqs[0] + events))
    attempts = await owner_conn.fetchval(
        "SELECT max(attempts) FROM webhook_deliveries WHERE tenant_id = $1", t.id)
    assert attempts >= 2


async def test_410_disables_the_endpoint_tells_the_admins_and_resume_catches_up(
    hook_tenants: TenantFactory, runner: Runner, receiver: Receiver,
    owner_conn: asyncpg.Connection,
) -> None:
    t = await hook_tenants.create()
    admin = t.admin_caller
    watcher = Receiver()
    watcher.start()
    try:
        gone, secret = await create_endpoint(admin, receiver.url, ["deal.*"])
        _, watch_secret = await create_endpoint(admin, watcher.url, ["webhook.disabled"])
        receiver.status = 410
        pipeline = await default_pipeline(admin)
        await create_deal(admin, pipeline["id"], "first")
        await wait_for(lambda: watcher.ids() != set(), 20, "the webhook.disabled event")
        notice = verify(watch_secret, watcher.snapshot()[0])
        assert notice["type"] == "webhook.disabled"
        assert notice["data"]["webhookEndpoint"]["id"] == gone["id"]
        assert "410" in notice["data"]["webhookEndpoint"]["disabledReason"]
        listed = {e["id"]: e for e in (await admin.ok(ENDPOINTS))["webhookEndpoints"]}
        assert listed[gone["id"]]["status"] == "DISABLED"
        assert "410" in listed[gone["id"]]["disabledReason"]
        assert listed[gone["id"]]["disabledAt"] is not None
        audit = await owner_conn.fetchval(
            "SELECT count(*) FROM audit_events WHERE tenant_id = $1 "
            "AND action = 'webhook.disabled'", t.id)
        assert audit == 1
        requests = receiver.requests
        assert requests == 1
        await create_deal(admin, pipeline["id"], "second")  # while disabled: kept, not sent
        await asyncio.sleep(1.0)
        assert receiver.requests == requests
        receiver.status = 204
        resumed = await admin.ok(RESUME, id=gone["id"])
        assert resumed["resumeWebhookEndpoint"]["endpoint"] == {"status": "ACTIVE",
                                                                "disabledReason": None}
        await wait_for(lambda: len(receiver.ids()) == 2, 20, "both deals after resume")
        titles = sorted(verify(secret, r)["data"]["deal"]["title"]
                        for r in first_arrivals(receiver.snapshot()))
        assert titles == ["first", "second"]
    finally:
        watcher.stop()


async def test_a_slow_receiver_does_not_delay_other_endpoints(
    hook_tenants: TenantFactory, runner: Runner, receiver: Receiver,
) -> None:
    t = await hook_tenants.create()
    admin = t.admin_caller
    slow = Receiver(delay=3.0)
    slow.start()
    try:
        await create_endpoint(admin, slow.url, ["deal.created"])
        await create_endpoint(admin, receiver.url, ["deal.created"])
        pipeline = await default_pipeline(admin)
        for i in range(6):
            await create_deal(admin, pipeline["id"], f"d{i}")
        await wait_for(lambda: len(receiver.ids()) == 6, 20, "the fast receiver")
        fast_done = max(r.at for r in receiver.snapshot())
        await wait_for(lambda: len(slow.ids()) >= 1, 20, "the slow receiver's first")
        assert fast_done < min(r.at for r in slow.snapshot())
    finally:
        slow.stop()


async def test_an_endpoint_never_receives_another_tenants_events(
    hook_tenants: TenantFactory, runner: Runner, receiver: Receiver,
) -> None:
    a = await hook_tenants.create()
    b = await hook_tenants.create()
    other = Receiver()
    other.start()
    try:
        _, secret_a = await create_endpoint(a.admin_caller, receiver.url, ["*"])
        _, secret_b = await create_endpoint(b.admin_caller, other.url, ["*"])
        pa = await default_pipeline(a.admin_caller)
        pb = await default_pipeline(b.admin_caller)
        deals_a = {(await create_deal(a.admin_caller, pa["id"], f"a{i}"))["id"]
                   for i in range(3)}
        deals_b = {(await create_deal(b.admin_caller, pb["id"], f"b{i}"))["id"]
                   for i in range(2)}
        await wait_for(lambda: len(receiver.ids()) == 3 and len(other.ids()) == 2, 20,
                       "both tenants' events")
        await asyncio.sleep(0.5)
        got_a = [verify(secret_a, r) for r in receiver.snapshot()]
        got_b = [verify(secret_b, r) for r in other.snapshot()]
        assert {p["data"]["deal"]["id"] for p in got_a} == deals_a
        assert {p["data"]["deal"]["id"] for p in got_b} == deals_b
        tenant_of = {base64.b64decode(p["data"]["tenantId"]).decode() for p in got_a}
        assert tenant_of == {f"Tenant:{a.id}"}
        assert {base64.b64decode(p["data"]["tenantId"]).decode() for p in got_b} == {
            f"Tenant:{b.id}"}
    finally:
        other.stop()





async def test_retention_drops_old_finished_deliveries_and_keeps_the_rest(
    hook_tenants: TenantFactory, runner: Runner, receiver: Receiver,
    owner_conn: asyncpg.Connection,
) -> None:
    """Deliveries that finished more than WEBHOOK_LOG_RETENTION_DAYS ago go with their
    attempts; recent ones and pending ones (whatever their age) stay."""
    t = await hook_tenants.create()
    admin = t.admin_caller
    await create_endpoint(admin, receiver.url, ["deal.created"])
    pipeline = await default_pipeline(admin)
    for i in range(3):
        await create_deal(admin, pipeline["id"], f"kept or not {i}")
    assert await statuses(owner_conn, t.id, {"delivered": 3}) == {"delivered": 3}
    ids = [r["id"] for r in await owner_conn.fetch(
        "SELECT id FROM webhook_deliveries WHERE tenant_id = $1 ORDER BY seq", t.id)]
    days = runner.settings.webhook_log_retention_days + 1
    await owner_conn.execute(
        "UPDATE webhook_deliveries SET created_at = now() - make_interval(days => $2) "
        "WHERE tenant_id = $1 AND id = ANY($3)", t.id, days, ids[:2])
    await owner_conn.execute(
        "UPDATE webhook_attempts SET attempted_at = now() - make_interval(days => $2) "
        "WHERE tenant_id = $1 AND delivery_id = ANY($3)", t.id, days, ids[:2])
    # The second one is made pending again (a retry far in the future): old, but not finished.
    await owner_conn.execute(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now() + "
        "interval '1 day' WHERE tenant_id = $1 AND id = $2", t.id, ids[1])
    await runner.retention()
    left = {r["id"]: r["status"] for r in await owner_conn.fetch(
        "SELECT id, status FROM webhook_deliveries WHERE tenant_id = $1", t.id)}
    assert left == {ids[1]: "pending", ids[2]: "delivered"}
    attempts = {r["delivery_id"] for r in await owner_conn.fetch(
        "SELECT delivery_id FROM webhook_attempts WHERE tenant_id = $1", t.id)}
    assert ids[0] not in attempts and ids[2] in attempts
