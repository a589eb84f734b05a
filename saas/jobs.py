"""The arq queue as the API and the workers both see it: one serializer, one queue name.

The two sides differ in how they take a Redis outage. The API's pool fails fast (one
connection attempt, one second): a request never waits on Redis, its jobs wait in the
outbox (saas/outbox.py). The worker's connections retry every command with backoff for as
long as Redis is away, so the worker waits for Redis instead of exiting.
"""

from __future__ import annotations

from typing import Any

import orjson
from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from saas.observability import tracing
from saas.settings import Settings


def serialize(value: Any) -> bytes:
    """JSON, never pickle: job payloads cross process and version boundaries. A job being
    enqueued carries the trace context of its enqueuer (saas/observability/tracing.py)."""
    if isinstance(value, dict):
        tracing.inject_job_context(value)
    return orjson.dumps(value)


def deserialize(data: bytes) -> Any:
    return orjson.loads(data)


def redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(settings.redis_url or "redis://127.0.0.1:6379/0")


def worker_redis_settings(settings: Settings) -> RedisSettings:
    """The worker's: wait for Redis at start and retry every command through an outage
    (backoff 0.1 s doubling to 5 s, without end), so the process survives Redis restarts."""
    base = redis_settings(settings)
    base.conn_retries = 1_000_000_000
    base.conn_retry_delay = 1
    base.retry = Retry(ExponentialBackoff(cap=5.0, base=0.1), retries=-1)
    base.retry_on_error = [RedisConnectionError, RedisTimeoutError, ConnectionError, OSError]
    return base


async def connect(settings: Settings) -> ArqRedis:
    """A pool for enqueueing jobs (the API side, and the outbox sweeper): one attempt to
    connect, so a Redis outage is an error at once, not a wait."""
    fast = redis_settings(settings)
    fast.conn_retries = 0
    return await create_pool(
        fast,
        default_queue_name=settings.arq_queue_name,
        job_serializer=serialize,
        job_deserializer=deserialize,
    )
