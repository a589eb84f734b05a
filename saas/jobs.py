"""The arq queue as the API and the workers both see it: one serializer, one queue name."""

from __future__ import annotations

from typing import Any

import orjson
from arq import ArqRedis, create_pool
from arq.connections import RedisSettings

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


async def connect(settings: Settings) -> ArqRedis:
    """A pool for enqueueing jobs (the API side)."""
    return await create_pool(
        redis_settings(settings),
        default_queue_name=settings.arq_queue_name,
        job_serializer=serialize,
        job_deserializer=deserialize,
    )
