"""The service's Prometheus series (one registry per process: API or worker)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram

GRAPHQL_DURATION = Histogram(
    "saas_graphql_operation_duration_seconds", "GraphQL operation latency",
    ["operation", "type"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
GRAPHQL_ERRORS = Counter("saas_graphql_errors_total", "GraphQL errors by code", ["code"])
HTTP_REQUESTS = Counter("saas_http_requests_total", "HTTP requests", ["method", "status"])
WS_SUBSCRIPTIONS = Gauge("saas_ws_active_subscriptions", "Live subscriptions open now")
EVENTS_FANNED_OUT = Counter("saas_live_events_delivered_total",
                            "Stage events delivered to live subscribers")
LIVE_WAKEUPS = Counter("saas_live_wakeups_total", "Live messages fanned out in memory")
JOB_DURATION = Histogram("saas_job_duration_seconds", "arq job duration", ["job"],
                         buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 15, 60, 300))
JOB_FAILURES = Counter("saas_job_failures_total", "arq jobs that raised", ["job"])

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def measured(job: F) -> F:
    """Time an arq job and count its failures (retries included), by job name."""
    name = job.__name__

    @wraps(job)
    async def wrapper(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await job(ctx, *args, **kwargs)
        except BaseException:
            JOB_FAILURES.labels(name).inc()
            raise
        finally:
            JOB_DURATION.labels(name).observe(time.perf_counter() - start)

    return wrapper  # type: ignore[return-value]


def operation_label(name: str | None) -> str:
    """Bounded label values: named operations only, capped length; anonymous ones pooled."""
    if not name:
        return "anonymous"
    return name[:64]
