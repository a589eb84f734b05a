"""The delivery worker: wake on commits, poll as a backstop, one sender task per endpoint.

Everything it does is driven from PostgreSQL (cursors, deliveries, leases); Redis only makes
it faster. The live hub's channel tells it which tenant just committed an event, so that
tenant is dispatched at once; every `WEBHOOK_POLL_SECONDS` it also goes through every
tenant with an active endpoint (entity events, retries that came due, a Redis outage). Each
endpoint with due deliveries gets its own task, so a slow or dead receiver delays only its
own deliveries. A wake-up only dispatches (the endpoints that got deliveries get a sender,
or their running sender is told to look again); the poll also asks which endpoints have
retries due.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from datetime import timedelta

import redis.asyncio as aioredis
from sqlalchemy import text

from saas.db import Database
from saas.settings import Settings
from saas.webhooks import delivery, dispatch
from saas.webhooks.endpoints import guard_for
from saas.webhooks.ssrf import Guard

log = logging.getLogger("saas.webhooks")
RETENTION_EVERY = 600.0

_DUE = text(
    "SELECT DISTINCT d.endpoint_id FROM webhook_deliveries d "
    "JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id AND e.id = d.endpoint_id "
    "WHERE d.status = 'pending' AND e.status = 'active' AND d.next_attempt_at <= now() "
    "AND (d.claimed_until IS NULL OR d.claimed_until < now())")


class Runner:
    """Dispatches and sends webhooks until `stop()`."""

    def __init__(self, db: Database, settings: Settings, *, channel: str | None,
                 guard: Guard | None = None) -> None:
        self.db = db
        self.settings = settings
        self.channel = channel
        self.guard = guard or guard_for(settings)
        self.client = delivery.client_session(settings)
        self.senders: dict[tuple[uuid.UUID, uuid.UUID], asyncio.Task[None]] = {}
        self.dirty: set[uuid.UUID] = set()
        # Endpoints whose running sender must claim again before it stops (new deliveries
        # arrived while it was sending its last batch).
        self.again: set[tuple[uuid.UUID, uuid.UUID]] = set()
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self.delivered = 0
        self._last_retention = 0.0

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen()) if self.channel else None
        next_poll = 0.0
        last_round = 0.0
        gap = self.settings.webhook_dispatch_interval_seconds
        try:
            while not self.stopping.is_set():
                # Rounds at most every `gap` seconds: under a stream of commits one dispatch
                # takes several events (a dispatch costs about as much for one as for ten);
                # an isolated commit is dispatched at once.
                if (wait := last_round + gap - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                now = last_round = time.monotonic()
                poll = now >= next_poll
                if poll:
                    tenants = await self._tenants()
                    self.dirty.clear()
                    next_poll = now + self.settings.webhook_poll_seconds
                else:
                    tenants, self.dirty = list(self.dirty), set()
                for tenant_id in tenants:
                    await self._tenant(tenant_id, poll=poll)
                if now - self._last_retention >= RETENTION_EVERY:
                    self._last_retention = now
                    await self.retention()
                self.wake.clear()
                if self.dirty:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(),
                                           max(next_poll - time.monotonic(), 0.01))
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
            for task in list(self.senders.values()):
                task.cancel()
            await asyncio.gather(*self.senders.values(), return_exceptions=True)
            await self.client.close()

    async def _tenants(self) -> list[uuid.UUID]:
        try:
            async with self.db.unit_of_work(None) as uow:
                return list((await uow.session.execute(
                    text("SELECT id FROM webhook_tenants()"))).scalars())
        except Exception:
            log.exception("webhooks: listing tenants failed; retrying at the next poll")
            return []

    async def _tenant(self, tenant_id: uuid.UUID, *, poll: bool = True) -> None:
        try:
            due = await dispatch.dispatch(self.db, tenant_id)
            if poll:
                async with self.db.unit_of_work(tenant_id) as uow:
                    due.update((await uow.session.execute(_DUE)).scalars())
        except Exception:
            log.exception("webhooks: tenant %s failed; retrying at the next poll", tenant_id)
            return
        for endpoint_id in due:
            key = (tenant_id, endpoint_id)
            if key not in self.senders:
                self.senders[key] = asyncio.create_task(self._sender(tenant_id, endpoint_id))
            else:
                self.again.add(key)

    async def _sender(self, tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
        """Send the endpoint's due deliveries until none is left (or it stops being active)."""
        key = (tenant_id, endpoint_id)
        try:
            while not self.stopping.is_set():
                self.again.discard(key)
                claimed = await delivery.claim(
                    self.db, tenant_id, endpoint_id,
                    limit=self.settings.webhook_concurrency_per_endpoint,
                    lease_seconds=self.settings.webhook_lease_seconds)
                if not claimed:
                    if key in self.again:
                        continue  # deliveries were added after this claim looked
                    return
                outcomes = await asyncio.gather(
                    *(delivery.send(self.client, self.guard, c) for c in claimed))
                done = [(c, o) for c, o in zip(claimed, outcomes, strict=True) if o.ok]
                await delivery.record_delivered(self.db, done)
                self.delivered += len(done)
                for c, o in zip(claimed, outcomes, strict=True):
                    if not o.ok:
                        await self._failed(c, o)
        except Exception:
            log.exception("webhooks: sender for endpoint %s failed", endpoint_id)
        finally:
            self.senders.pop(key, None)
            self.again.discard(key)

    async def _failed(self, claimed: delivery.Claimed, outcome: delivery.Outcome) -> None:
        status = await delivery.record(self.db, self.settings, claimed, outcome)
        log.info("webhook %s to endpoint %s: %s (%s)", signing_id(claimed.id),
                 claimed.endpoint_id, outcome.status_code or outcome.error, status)

    async def retention(self) -> None:
        """Drop finished deliveries and attempts older than WEBHOOK_LOG_RETENTION_DAYS."""
        keep = timedelta(days=self.settings.webhook_log_retention_days)
        for tenant_id in await self._tenants():
            try:
                async with self.db.unit_of_work(tenant_id) as uow:
                    await uow.session.execute(text(
                        "DELETE FROM webhook_deliveries WHERE status <> 'pending' "
                        "AND created_at < now() - CAST(:keep AS interval)"), {"keep": keep})
                    await uow.session.execute(text(
                        "DELETE FROM webhook_attempts "
                        "WHERE attempted_at < now() - CAST(:keep AS interval)"),
                        {"keep": keep})
            except Exception:
                log.exception("webhooks: retention for tenant %s failed", tenant_id)

    async def _listen(self) -> None:
        """Wake-ups from the live hub's channel; reconnects with backoff (polling goes on)."""
        assert self.channel is not None
        backoff = 0.1
        while True:
            client = aioredis.Redis.from_url(self.settings.redis_url or "redis://127.0.0.1:6379")
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    backoff = 0.1
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        self._heard(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("webhooks: wake-up channel lost (%s); polling meanwhile", e)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _heard(self, data: object) -> None:
        try:
            message = json.loads(data) if isinstance(data, bytes | str) else None
            tenant = uuid.UUID(str(message["tenant"])) if isinstance(message, dict) \
                and "tenant" in message else None
        except (ValueError, KeyError):
            return
        if tenant is not None:
            self.dirty.add(tenant)
            self.wake.set()


def signing_id(delivery_id: uuid.UUID) -> str:
    return f"msg_{delivery_id.hex}"


async def serve(settings: Settings) -> None:
    """The `saas webhooks` process: run until SIGTERM/SIGINT, then finish in-flight sends'
    bookkeeping by cancelling them (their leases make another worker send them again)."""
    import signal

    from saas.db import create_engine
    from saas.live.config import LiveSettings, channel_for

    db = Database(create_engine(settings.resolved_app_database_url(), pool_size=10))
    runner = Runner(db, settings, channel=channel_for(settings, LiveSettings()))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.stop)
    try:
        await runner.run()
    finally:
        await db.dispose()
