"""The `saas` command: dev, serve, worker, webhooks, migrate, tenant create (composition root)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from saas.settings import Settings, get_settings

DEMO_SLUG = "demo"
DEMO_EMAIL = "admin@demo.example"
DEMO_PASSWORD = "demo-password"


def _settings_with_embedded(settings: Settings, *, need_redis: bool = True) -> Settings:
    """In dev/test, start embedded PostgreSQL/Redis for whichever URL is missing."""
    if settings.database_url and (settings.redis_url or not need_redis):
        return settings
    if not settings.is_dev:
        settings.check_secure()  # raises with the variables to set
    from saas import embedded

    servers = embedded.start(settings.data_dir)
    updates: dict[str, str] = {}
    if not settings.database_url:
        updates["database_url"] = servers.database_url
    if not settings.redis_url:
        updates["redis_url"] = servers.redis_url
    # Child processes (the dev worker) must see the same servers.
    os.environ.update({k.upper(): v for k, v in updates.items()})
    _keep_alive.append(servers)
    return settings.model_copy(update=updates)


_keep_alive: list[object] = []


def cmd_migrate(settings: Settings) -> None:
    from saas import migrate

    assert settings.database_url
    migrate.upgrade(settings.database_url, settings)
    print("migrations: at head")


async def _provision(settings: Settings, name: str, slug: str | None, email: str,
                     password: str | None, *, exist_ok: bool, demo: bool = False) -> None:
    from saas.db import Database, create_engine
    from saas.errors import DomainError
    from tenants import service

    db = Database(create_engine(settings.resolved_app_database_url(), pool_size=2))
    try:
        result = await service.provision_tenant(
            db=db, name=name, slug=slug, admin_email=email, admin_password=password
        )
        print(f"tenant:   {result.tenant.name} (slug {result.tenant.slug}, id {result.tenant.id})")
        print(f"admin:    {result.admin.email}")
        print(f"password: {result.admin_password}")
        if demo:
            await _seed(db, result.admin, print)
    except DomainError as e:
        if not exist_ok:
            raise SystemExit(f"error: {e.code}: {e.message}") from e
        print(f"tenant {slug!r} already exists")
    finally:
        await db.dispose()


async def _seed(db: Any, admin: Any, say: Callable[[str], None]) -> None:
    from saas.demo import seed
    from tenants import service

    say("seeding the demo tenant: teams, reps, ~500 deals with six months of history, "
        "activities, targets, a campaign and a forecast")
    started = time.monotonic()
    summary = await seed.seed(db=db, admin=service.principal_for_user(admin))
    say(f"seeded in {time.monotonic() - started:.1f} s: {summary.users} users, "
        f"{summary.deals} deals, {summary.events} stage events, {summary.activities} "
        f"activities, forecast {summary.forecast_status}")


async def provision_demo(settings: Settings, say: Callable[[str], None]) -> None:
    """The demo tenant and its history on first start; later starts leave it as it is."""
    from saas.db import Database, create_engine
    from saas.errors import Conflict
    from tenants import service

    db = Database(create_engine(settings.resolved_app_database_url(), pool_size=2))
    try:
        try:
            result = await service.provision_tenant(
                db=db, name="Demo Company", slug=DEMO_SLUG, admin_email=DEMO_EMAIL,
                admin_password=DEMO_PASSWORD)
        except Conflict:
            say(f"demo tenant {DEMO_SLUG!r} exists (kept as it is; delete "
                f"{settings.data_dir}/ for a fresh one)")
            return
        say(f"created the demo tenant {DEMO_SLUG!r}")
        await _seed(db, result.admin, say)
    finally:
        await db.dispose()


def _configure_logging(settings: Settings) -> None:
    if settings.log_json:
        from saas.observability import logs

        logs.configure(settings.log_level)


def _tune_gc() -> None:
    """Fewer, cheaper collections for a request-serving process: move everything imported
    so far out of the collector's view and raise the young-generation threshold (measured:
    +70-80% board throughput, bench/README.md). A young collection holds the GIL for about
    that many objects (70-180 ms at 100,000 in this process), so requests should leave no
    cyclic garbage and the edge should keep no documents it refused: parsed and validated
    documents die by reference count and over-cost ones are not cached
    (schema.edge.documents). 20,000 made the pauses 20-30 ms, but CI then failed the test
    that a cancelled heavy request is cleaned up within 1 s, twice (bench/README.md,
    "Garbage collection")."""
    import gc

    import saas.app  # noqa: F401 - import the whole app before freezing

    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


# Websockets (live boards): websockets' sans-I/O protocol, whose send writes at once
# unless the client is behind (the live fan-out relies on that), and no per-message
# deflate: compressing each small event frame for every subscriber cost more CPU than the
# bytes saved (bench/README.md, live latency).
SWITCH_INTERVAL_SECONDS = 0.0005
UVICORN_WS_OPTIONS: dict[str, Any] = {"ws": "websockets-sansio", "ws_per_message_deflate": False}


def cmd_serve(settings: Settings, *, reload: bool = False) -> None:
    import uvicorn

    _configure_logging(settings)
    _tune_gc()
    # Documents are parsed and validated on threads (schema/edge/documents.py): while one is
    # busy, the event loop waits for the GIL at each wake-up up to the switch interval. In
    # a validation flood (tests/edge/test_stalls.py, before the threads rested) a bystander's
    # p50/p99 were 41/205 ms at the default 5 ms and 17/90 ms at 0.5 ms.
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    uvicorn.run(
        "saas.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        **UVICORN_WS_OPTIONS,
        ws_max_size=settings.ws_max_message_bytes,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
        log_level=settings.log_level.lower(),
        log_config=None if settings.log_json else uvicorn.config.LOGGING_CONFIG,
        access_log=not settings.log_json,
        reload=reload,
    )


def cmd_worker(settings: Settings, *, check: bool) -> int:
    from arq import check_health, run_worker

    from workers.settings import WorkerSettings

    if check:  # one quick look at Redis, not the worker's wait-through-outages settings
        from saas import jobs

        return check_health({"redis_settings": jobs.redis_settings(settings),
                             "health_check_key": WorkerSettings.health_check_key,
                             "queue_name": WorkerSettings.queue_name})
    _configure_logging(settings)
    run_worker(WorkerSettings)  # type: ignore[arg-type]
    return 0


def cmd_webhooks(settings: Settings) -> int:
    from saas.webhooks.runner import serve

    _configure_logging(settings)
    asyncio.run(serve(settings))
    return 0


def cmd_dev(settings: Settings, *, port: int | None) -> int:
    from saas.devserver import supervisor

    return supervisor.run(settings, port=port)


def _register_documents(settings: Settings, files: list[str]) -> int:
    texts = [Path(f).read_text() for f in files]
    return asyncio.run(_register(settings, texts))


async def _register(settings: Settings, texts: list[str]) -> int:
    import redis.asyncio as aioredis

    from schema.edge import persisted  # the composition root may import schema/

    client = aioredis.Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0")
    try:
        for name, digest in await persisted.register(client, texts):
            print(f"{digest}  {name}")
    finally:
        await client.aclose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="saas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="embedded servers (unless URLs set), migrate, demo "
                         "tenant, mail sink, worker and API; stops all of them on any signal")
    dev.add_argument("--port", type=int, help="the API's port (default: PORT, 8000)")
    sub.add_parser("serve", help="run the API (uvicorn)")
    worker = sub.add_parser("worker", help="run an arq worker")
    worker.add_argument("--check", action="store_true", help="health check (arq --check)")
    sub.add_parser("webhooks", help="run only the webhook delivery loop (the worker also "
                                    "runs it unless WEBHOOK_DELIVERY_IN_WORKER=false)")
    sub.add_parser("migrate", help="apply database migrations as the owner role")
    tenant = sub.add_parser("tenant", help="tenant administration")
    tenant_sub = tenant.add_subparsers(dest="tenant_command", required=True)
    create = tenant_sub.add_parser("create", help="provision a tenant and print its admin")
    create.add_argument("name")
    create.add_argument("--admin-email", required=True)
    create.add_argument("--slug")
    create.add_argument("--admin-password")
    create.add_argument("--demo", action="store_true",
                        help="fill it with the demo data (teams, reps, deals with history)")
    documents = sub.add_parser("documents", help="trusted documents of first-party apps")
    documents_sub = documents.add_subparsers(dest="documents_command", required=True)
    register = documents_sub.add_parser(
        "register", help="register every operation of the given .graphql files (prints each "
                         "operation's name and sha256)")
    register.add_argument("files", nargs="+")
    args = parser.parse_args(argv)

    settings = get_settings()
    if args.command == "dev":
        return cmd_dev(settings, port=args.port)
    elif args.command == "serve":
        settings.check_secure()
        cmd_serve(settings)
    elif args.command == "worker":
        return cmd_worker(settings, check=args.check)
    elif args.command == "webhooks":
        settings.check_secure()
        return cmd_webhooks(settings)
    elif args.command == "migrate":
        settings = _settings_with_embedded(settings, need_redis=False)
        cmd_migrate(settings)
    elif args.command == "documents":
        return _register_documents(settings, args.files)
    elif args.command == "tenant":
        settings = _settings_with_embedded(settings, need_redis=False)
        asyncio.run(_provision(settings, args.name, args.slug, args.admin_email,
                               args.admin_password, exist_ok=False, demo=args.demo))
    return 0


if __name__ == "__main__":
    sys.exit(main())
