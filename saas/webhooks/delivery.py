"""Sending deliveries: claim with a lease, POST signed, record the outcome, retry or give up.

    claim    the endpoint's due deliveries, oldest first, at most one per subject (deal,
             contact, ...) at a time: a later event of a deal waits until the earlier one
             was delivered, so per-deal order holds across retries and workers. The claim
             is a lease: a worker killed mid-delivery leaves it to be claimed again.
    send     re-check the URL (SSRF), connect to the checked address, POST with the
             Standard Webhooks headers; connect and read timeouts.
    record   2xx: delivered, a whole batch in one transaction (and an endpoint that was
             failing has its backlog made due);
             410: the endpoint is disabled; anything else: retried with exponential backoff
             and jitter until the retry window ends, then the delivery gives up, and an
             endpoint failing for the whole window is disabled. Every attempt is logged.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import text

from saas import entity_events
from saas.db import Database, UnitOfWork
from saas.entity_events import gid
from saas.settings import Settings
from saas.webhooks import signing
from saas.webhooks.ssrf import ForbiddenAddress, Guard
from tenants import audit

log = logging.getLogger("saas.webhooks")
MAX_BODY = 2048
USER_AGENT = "saas-webhooks/1"

# The head of each subject's queue is the pending delivery with its lowest seq. The check is a
# correlated scalar subquery on purpose: PostgreSQL runs it as one probe of the
# (tenant, endpoint, order_key, seq) index per candidate whatever the statistics say. As an
# anti-join, a freshly filled table (estimated at one row before autovacuum analysed it)
# got a plan that compared every pending row with every other: 430 ms per claim at 790
# pending deliveries, the whole delivery loop's budget.
_CLAIM = text(
    """
    UPDATE webhook_deliveries SET claimed_until = now() + :lease, attempts = attempts + 1
    WHERE tenant_id = :t AND id IN (
      SELECT d.id FROM webhook_deliveries d
      WHERE d.tenant_id = :t AND d.endpoint_id = :e AND d.status = 'pending'
        AND d.next_attempt_at <= now()
        AND (d.claimed_until IS NULL OR d.claimed_until < now())
        AND d.seq = (SELECT min(p.seq) FROM webhook_deliveries p
                     WHERE p.tenant_id = :t AND p.endpoint_id = :e
                       AND p.order_key = d.order_key AND p.status = 'pending')
      ORDER BY d.seq LIMIT :n FOR UPDATE SKIP LOCKED)
    RETURNING id, seq, attempts, payload::text AS body, created_at
    """)


@dataclass(frozen=True)
class Claimed:
    tenant_id: uuid.UUID
    endpoint_id: uuid.UUID
    id: uuid.UUID
    seq: int
    attempt: int
    body: str
    created_at: datetime
    url: str
    secrets: tuple[str, ...]
    failing: bool = False  # the endpoint was failing when this was claimed


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: int
    body: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def claim(db: Database, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, *, limit: int,
                lease_seconds: float) -> list[Claimed]:
    """Lease up to `limit` due deliveries of an active endpoint."""
    async with db.unit_of_work(tenant_id) as uow:
        endpoint = (await uow.session.execute(text(
            "SELECT url, secret, previous_secret, previous_secret_expires_at > now() AS grace, "
            "failing_since IS NOT NULL AS failing "
            "FROM webhook_endpoints WHERE id = :e AND status = 'active'"),
            {"e": endpoint_id})).one_or_none()
        if endpoint is None:
            return []
        secrets = (endpoint.secret,) + ((endpoint.previous_secret,)
                                        if endpoint.grace and endpoint.previous_secret else ())
        rows = (await uow.session.execute(_CLAIM, {
            "t": tenant_id, "e": endpoint_id, "n": limit,
            "lease": timedelta(seconds=lease_seconds)})).all()
    return sorted((Claimed(tenant_id, endpoint_id, r.id, r.seq, r.attempts, r.body,
                           r.created_at, endpoint.url, secrets, endpoint.failing)
                   for r in rows),
                  key=lambda c: c.seq)


def _address_url(scheme: str, address: str, port: int, path: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{scheme}://{host}:{port}{path}"


def client_session(settings: Settings) -> aiohttp.ClientSession:
    """One pooled HTTP client per delivery worker: connect and read timeouts from settings,
    no redirects (see `send`), no cookies, no proxy from the environment."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None,
                                      sock_connect=settings.webhook_connect_timeout_seconds,
                                      sock_read=settings.webhook_read_timeout_seconds),
        connector=aiohttp.TCPConnector(limit=200, limit_per_host=0, use_dns_cache=False),
        cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"))


async def send(client: aiohttp.ClientSession, guard: Guard, claimed: Claimed) -> Outcome:
    """One attempt; never raises for network or receiver trouble (it becomes the outcome)."""
    start = time.perf_counter()

    def elapsed() -> int:
        return int((time.perf_counter() - start) * 1000)

    try:
        target = await guard.check(claimed.url)
    except ForbiddenAddress as e:
        return Outcome(None, elapsed(), None, f"refused before connecting: {e.message}")
    except Exception as e:  # an unresolvable host is a failed attempt like any other
        return Outcome(None, elapsed(), None, f"{type(e).__name__}: {e}")
    default_port = 443 if target.scheme == "https" else 80
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": target.host if target.port == default_port else f"{target.host}:{target.port}",
        **signing.headers(delivery_id=claimed.id, body=claimed.body, secrets_=claimed.secrets),
    }
    # The connection goes to the checked address; TLS names (SNI) and verifies the host.
    url = _address_url(target.scheme, target.address, target.port, target.path)
    tls: dict[str, Any] = {"server_hostname": target.host} if target.scheme == "https" \
        else {}
    try:
        async with client.post(url, data=claimed.body.encode(), headers=headers,
                               allow_redirects=False,  # a redirect could lead anywhere
                               **tls) as response:
            body = await response.content.read(MAX_BODY)
            return Outcome(response.status, elapsed(), body.decode("utf-8", "replace"), None)
    except (aiohttp.ClientError, TimeoutError) as e:
        reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        return Outcome(None, elapsed(), None, reason[:500])


def backoff(attempt: int, settings: Settings) -> float:
    """Seconds before the next attempt: exponential, capped, with full jitter on its upper
    half (so a receiver's recovery is not met by every delivery at the same instant)."""
    ceiling = min(settings.webhook_backoff_max_seconds,
                  settings.webhook_backoff_base_seconds * 2 ** max(attempt - 1, 0))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))


_ATTEMPTS = text(
    "INSERT INTO webhook_attempts (tenant_id, delivery_id, attempt, status_code, latency_ms, "
    "response_body) SELECT :t, unnest(CAST(:ids AS uuid[])), unnest(CAST(:attempts AS int[])), "
    "unnest(CAST(:codes AS int[])), unnest(CAST(:ms AS int[])), unnest(CAST(:bodies AS text[])) "
    "ON CONFLICT DO NOTHING")

_DELIVERED = text(
    "UPDATE webhook_deliveries d SET status = 'delivered', delivered_at = now(), "
    "claimed_until = NULL, last_status_code = u.code, last_error = NULL "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:attempts AS int[]), CAST(:codes AS int[])) "
    "AS u(id, attempt, code) "
    # Only the claim that is still current decides (a lease that ran out was claimed again;
    # its holder decides instead).
    "WHERE d.tenant_id = :t AND d.id = u.id AND d.attempts = u.attempt AND d.status = 'pending'")


async def record_delivered(db: Database, done: list[tuple[Claimed, Outcome]]) -> None:
    """Store a batch of 2xx attempts of one endpoint in one transaction (the common case: one
    transaction per batch instead of one per delivery). An endpoint that was failing has its
    backlog made due at once."""
    if not done:
        return
    first = done[0][0]
    params = {"t": first.tenant_id, "ids": [c.id for c, _ in done],
              "attempts": [c.attempt for c, _ in done],
              "codes": [o.status_code for _, o in done], "ms": [o.latency_ms for _, o in done],
              "bodies": [o.body for _, o in done]}
    async with db.unit_of_work(first.tenant_id) as uow:
        await uow.session.execute(_ATTEMPTS, params)
        await uow.session.execute(_DELIVERED, params)
        if not any(c.failing for c, _ in done):
            return  # the common case: the endpoint was not failing when these were claimed
        recovered = (await uow.session.execute(text(
            "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = :e "
            "AND failing_since IS NOT NULL RETURNING id"), {"e": first.endpoint_id})).scalar()
        if recovered is not None:  # the receiver is back: its backlog is due now
            await uow.session.execute(text(
                "UPDATE webhook_deliveries SET next_attempt_at = now() "
                "WHERE endpoint_id = :e AND status = 'pending' AND next_attempt_at > now()"),
                {"e": first.endpoint_id})


async def record(db: Database, settings: Settings, claimed: Claimed, outcome: Outcome) -> str:
    """Store one attempt and its consequences; returns the delivery's new status."""
    if outcome.ok:
        await record_delivered(db, [(claimed, outcome)])
        return "delivered"
    async with db.unit_of_work(claimed.tenant_id) as uow:
        await uow.session.execute(text(
            "INSERT INTO webhook_attempts (tenant_id, delivery_id, attempt, status_code, "
            "latency_ms, response_body, error) VALUES (:t, :d, :a, :code, :ms, :body, :err) "
            "ON CONFLICT DO NOTHING"),
            {"t": claimed.tenant_id, "d": claimed.id, "a": claimed.attempt,
             "code": outcome.status_code, "ms": outcome.latency_ms, "body": outcome.body,
             "err": outcome.error})
        params = {"d": claimed.id, "a": claimed.attempt, "code": outcome.status_code,
                  "err": outcome.error, "e": claimed.endpoint_id}
        now = datetime.now(UTC)
        window = settings.webhook_retry_window_seconds
        give_up = (now - claimed.created_at).total_seconds() >= window
        status = "failed" if give_up and outcome.status_code != 410 else "pending"
        await uow.session.execute(text(
            "UPDATE webhook_deliveries SET status = :s, claimed_until = NULL, "
            "next_attempt_at = :next, last_status_code = :code, last_error = :err "
            "WHERE id = :d AND attempts = :a AND status = 'pending'"),
            {**params, "s": status,
             "next": now + timedelta(seconds=backoff(claimed.attempt, settings))})
        if outcome.status_code == 410:
            await disable(uow, claimed.endpoint_id, "the receiver answered 410 Gone")
            return "pending"
        failing_since = (await uow.session.execute(text(
            "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, now()) "
            "WHERE id = :e RETURNING failing_since"), params)).scalar()
        if failing_since is not None and (
                now - failing_since).total_seconds() >= settings.webhook_retry_window_seconds:
            await disable(uow, claimed.endpoint_id,
                          "every delivery failed for the whole retry window")
        return status


async def disable(uow: UnitOfWork, endpoint_id: uuid.UUID, reason: str) -> None:
    """Stop an active endpoint and tell the tenant: a field, an audit entry, an event."""
    row = (await uow.session.execute(text(
        "UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = :r, "
        "disabled_at = now(), updated_at = now() WHERE id = :e AND status = 'active' "
        "RETURNING url"), {"e": endpoint_id, "r": reason})).one_or_none()
    if row is None:
        return
    log.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)
    await audit.record(uow, None, "webhook.disabled", target=("WebhookEndpoint", endpoint_id),
                       details={"reason": reason, "url": row.url})
    await entity_events.append(
        uow, kind="webhook.disabled", entity_type="WebhookEndpoint", entity_id=endpoint_id,
        data={"webhookEndpoint": {"id": gid("WebhookEndpoint", endpoint_id), "url": row.url,
                                  "disabledReason": reason}})
