"""The one place the arq worker is configured: redis, serializer, functions, crons."""

from __future__ import annotations

import os
from typing import Any

from arq.connections import RedisSettings
from arq.cron import cron
from prometheus_client import start_http_server

from saas import jobs
from saas.db import Database, create_engine
from saas.observability import tracing
from saas.observability.metrics import measured
from saas.settings import get_settings
from workers import outbox, webhooks
from workers.campaigns import campaigns_fanout, campaigns_tenant
from workers.forecast import nightly_forecast, nightly_forecasts, run_forecast
from workers.idempotency import purge_idempotency_keys
from workers.imports import run_export, run_import
from workers.planfact import planfact_fanout, planfact_tenant


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    ctx["settings"] = settings
    if tracing.provider() is None:
        tracing.configure_from_settings(settings.otel_exporter_otlp_endpoint, "saas-worker")
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port)
    ctx["db"] = Database(create_engine(settings.resolved_app_database_url(), pool_size=5))
    if settings.webhook_delivery_in_worker:
        ctx["webhooks"] = webhooks.start(ctx["db"], settings)
    ctx["outbox"] = outbox.start(ctx["db"], settings)


async def shutdown(ctx: dict[str, Any]) -> None:
    if "outbox" in ctx:
        await outbox.stop(ctx["outbox"])
    if "webhooks" in ctx:
        await webhooks.stop(ctx["webhooks"])
    await ctx["db"].dispose()


def _job(function: Any) -> Any:
    return measured(tracing.traced(function))


def redis_settings() -> RedisSettings:
    """Retrying through Redis outages: the worker waits for Redis instead of exiting."""
    return jobs.worker_redis_settings(get_settings())


class WorkerSettings:
    """Jobs are idempotent and may run more than once; payloads are JSON, never pickle."""

    # Each runs in a span continuing the trace that enqueued it (saas/observability/tracing.py)
    # and is timed, its failures counted (saas_job_* series).
    functions: list[Any] = [_job(job) for job in (
        planfact_fanout, planfact_tenant, run_forecast, nightly_forecasts, nightly_forecast,
        campaigns_fanout, campaigns_tenant, purge_idempotency_keys, run_import, run_export,
        outbox.requeue_stale)]
    # Monday 12:00 UTC: the previous ISO week has ended in every time zone (UTC-12..+14).
    cron_jobs: list[Any] = [cron(_job(planfact_fanout), weekday=0, hour=12, minute=0,
                                 unique=True, run_at_startup=False),
                          cron(_job(nightly_forecasts), hour=2, minute=0, unique=True,
                               run_at_startup=False),
                          # Every minute: one campaigns job per tenant (deterministic job id).
                          cron(_job(campaigns_fanout), second=0, unique=True,
                               run_at_startup=False),
                          # Hourly: expired Idempotency-Key responses (24 h by default).
                          cron(_job(purge_idempotency_keys), minute=17, second=0,
                               unique=True, run_at_startup=False),
                          # Every minute: forecasts/imports/exports whose job Redis lost.
                          cron(_job(outbox.requeue_stale), second=30, unique=True,
                               run_at_startup=False)]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = redis_settings()
    job_serializer = staticmethod(jobs.serialize)
    job_deserializer = staticmethod(jobs.deserialize)
    max_jobs = 10
    job_timeout = get_settings().job_timeout_seconds
    queue_name = get_settings().arq_queue_name
    max_tries = 5
    health_check_interval = 30
    # One key per pod, so `saas worker --check` reports on this worker, not any worker.
    health_check_key = f"arq:health-check:{os.environ.get('HOSTNAME', 'local')}"
    allow_abort_jobs = True
