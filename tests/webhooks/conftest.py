"""Webhook fixtures: an API whose settings allow loopback receivers, and the delivery worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from saas.db import Database
from saas.live.config import LiveSettings, channel_for
from saas.settings import Settings
from saas.webhooks.runner import Runner
from tests.factories import TenantFactory
from tests.webhooks.support import Receiver

LOOPBACK = ["127.0.0.0/8"]


@pytest.fixture(scope="session")
def hook_settings(settings: Settings) -> Settings:
    """Loopback allowed (the receivers are local); short backoff so retries happen in tests."""
    return settings.model_copy(update={
        "webhook_allowed_networks": LOOPBACK, "webhook_backoff_base_seconds": 0.2,
        "webhook_backoff_max_seconds": 1.0, "webhook_poll_seconds": 0.2,
        "webhook_lease_seconds": 5.0, "webhook_read_timeout_seconds": 5.0,
        "webhook_connect_timeout_seconds": 2.0, "db_pool_size": 5, "db_max_overflow": 5})


@pytest.fixture(scope="session")
async def hook_app(hook_settings: Settings) -> AsyncIterator[Any]:
    from saas.app import create_app

    application = create_app(hook_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def hook_tenants(hook_app: Any, db: Database,
                       hook_settings: Settings) -> AsyncIterator[TenantFactory]:
    transport = httpx.ASGITransport(app=hook_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield TenantFactory(db=db, settings=hook_settings, client=client)


@pytest.fixture(autouse=True)
async def _quiet_endpoints(owner_conn: asyncpg.Connection) -> AsyncIterator[None]:
    """After each test every endpoint left active is paused, so later tests' workers do not
    keep retrying receivers that are gone."""
    yield
    await owner_conn.execute("UPDATE webhook_endpoints SET status = 'paused' "
                             "WHERE status = 'active'")


@pytest.fixture
async def runner(db: Database, hook_settings: Settings) -> AsyncIterator[Runner]:
    """The delivery worker, in-process."""
    worker = Runner(db, hook_settings, channel=channel_for(hook_settings, LiveSettings()))
    task = asyncio.create_task(worker.run())
    yield worker
    worker.stop()
    await asyncio.wait_for(task, 30)


@pytest.fixture
def receiver() -> Any:
    r = Receiver()
    r.start()
    yield r
    r.stop()
