"""The `saas` command: dev, serve, worker, migrate, tenant create (composition root)."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
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
                     password: str | None, *, exist_ok: bool) -> None:
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
    except DomainError as e:
        if not exist_ok:
            raise SystemExit(f"error: {e.code}: {e.message}") from e
        print(f"tenant {slug!r} already exists")
    finally:
        await db.dispose()


def _configure_logging(settings: Settings) -> None:
    if settings.log_json:
        from saas.observability import logs

        logs.configure(settings.log_level)


def _tune_gc() -> None:
    """Fewer, cheaper collections for a request-serving process: move everything imported
    so far out of the collector's view and raise the young-generation threshold (measured:
    +70-80% board throughput, bench/README.md)."""
    import gc

    import saas.app  # noqa: F401 - import the whole app before freezing

    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


# Websockets (live boards): websockets' sans-I/O protocol, whose send writes at once
# unless the client is behind (the live fan-out relies on that), and no per-message
# deflate: compressing each small event frame for every subscriber cost more CPU than the
# bytes saved (bench/README.md, live latency).
UVICORN_WS_OPTIONS: dict[str, Any] = {"ws": "websockets-sansio", "ws_per_message_deflate": False}


def cmd_serve(settings: Settings, *, reload: bool = False) -> None:
    import uvicorn

    _configure_logging(settings)
    _tune_gc()
    uvicorn.run(
        "saas.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        **UVICORN_WS_OPTIONS,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
        log_level=settings.log_level.lower(),
        log_config=None if settings.log_json else uvicorn.config.LOGGING_CONFIG,
        access_log=not settings.log_json,
        reload=reload,
    )


def cmd_worker(settings: Settings, *, check: bool) -> int:
    from arq import check_health, run_worker

    from workers.settings import WorkerSettings

    if check:
        return check_health(WorkerSettings)  # type: ignore[arg-type]
    _configure_logging(settings)
    run_worker(WorkerSettings)  # type: ignore[arg-type]
    return 0


def cmd_dev(settings: Settings) -> None:
    settings = _settings_with_embedded(settings)
    cmd_migrate(settings)
    asyncio.run(_provision(settings, "Demo Company", DEMO_SLUG, DEMO_EMAIL, DEMO_PASSWORD,
                           exist_ok=True))
    from workers.settings import WorkerSettings

    worker = None
    if WorkerSettings.functions or WorkerSettings.cron_jobs:
        worker = subprocess.Popen([sys.executable, "-m", "saas.cli", "worker"],
                                  env=os.environ.copy())
    url = f"http://{settings.host}:{settings.port}/graphql"
    print(f"\nAPI:      {url}  (GraphiQL in the browser)")
    print(f"login:    tenant {DEMO_SLUG!r}, email {DEMO_EMAIL!r}, password {DEMO_PASSWORD!r}\n")
    get_settings.cache_clear()
    try:
        cmd_serve(settings)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=15)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="saas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="embedded servers (unless URLs set), migrate, demo tenant, API")
    sub.add_parser("serve", help="run the API (uvicorn)")
    worker = sub.add_parser("worker", help="run an arq worker")
    worker.add_argument("--check", action="store_true", help="health check (arq --check)")
    sub.add_parser("migrate", help="apply database migrations as the owner role")
    tenant = sub.add_parser("tenant", help="tenant administration")
    tenant_sub = tenant.add_subparsers(dest="tenant_command", required=True)
    create = tenant_sub.add_parser("create", help="provision a tenant and print its admin")
    create.add_argument("name")
    create.add_argument("--admin-email", required=True)
    create.add_argument("--slug")
    create.add_argument("--admin-password")
    args = parser.parse_args(argv)

    settings = get_settings()
    if args.command == "dev":
        cmd_dev(settings)
    elif args.command == "serve":
        settings.check_secure()
        cmd_serve(settings)
    elif args.command == "worker":
        return cmd_worker(settings, check=args.check)
    elif args.command == "migrate":
        settings = _settings_with_embedded(settings, need_redis=False)
        cmd_migrate(settings)
    elif args.command == "tenant":
        settings = _settings_with_embedded(settings, need_redis=False)
        asyncio.run(_provision(settings, args.name, args.slug, args.admin_email,
                               args.admin_password, exist_ok=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
