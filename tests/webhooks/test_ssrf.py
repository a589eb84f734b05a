"""SSRF: every forbidden address class is refused on save (nothing written) and at connect
time (no request leaves), including names that resolve to loopback."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from saas.db import Database
from saas.errors import ValidationFailed
from saas.live.config import LiveSettings, channel_for
from saas.settings import Settings
from saas.webhooks.runner import Runner
from saas.webhooks.ssrf import ForbiddenAddress, Guard
from tests.deals.ops import create_deal, default_pipeline
from tests.factories import TenantFactory
from tests.webhooks.support import CREATE, DELIVERIES, Receiver, create_endpoint

FORBIDDEN = [
    ("http://127.0.0.1:9/hook", "loopback"),
    ("http://127.8.9.10/hook", "loopback"),
    ("http://[::1]:9/hook", "loopback"),
    ("http://localhost:9/hook", "loopback"),  # a name that resolves to 127.0.0.1
    ("http://2130706433/hook", "loopback"),  # 127.0.0.1 spelled as a number
    ("http://10.1.2.3/hook", "private"),
    ("http://172.16.0.1/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://[fd12:3456::1]/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://169.254.10.20/hook", "link-local"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),  # IPv4-mapped IPv6
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://100.64.0.1/hook", "reserved"),  # carrier-grade NAT
    ("http://198.18.0.1/hook", "private"),  # benchmarking network
]


@pytest.mark.parametrize(("url", "why"), FORBIDDEN)
async def test_forbidden_addresses_are_refused_on_save_and_nothing_is_written(
    tenants: TenantFactory, owner_conn: asyncpg.Connection, url: str, why: str,
) -> None:
    t = await tenants.create()
    result = (await t.admin_caller.ok(CREATE, url=url, types=["*"]))["createWebhookEndpoint"]
    assert result["endpoint"] is None and result["secret"] is None
    [error] = result["errors"]
    assert (error["code"], error["field"]) == ("VALIDATION_FAILED", "url")
    assert why in error["message"]
    assert await owner_conn.fetchval(
        "SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1", t.id) == 0
    assert await owner_conn.fetchval(
        "SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND action LIKE 'webhook.%'",
        t.id) == 0


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://example.com/x", "https://"), ("http://user:pw@example.com/", "credentials"),
    ("https://", "no host"), ("not a url", "https://"), ("http://example.com/#x", "fragment"),
])
async def test_malformed_urls_are_refused(tenants: TenantFactory, url: str,
                                          message: str) -> None:
    t = await tenants.create()
    result = (await t.admin_caller.ok(CREATE, url=url, types=["*"]))["createWebhookEndpoint"]
    [error] = result["errors"]
    assert error["field"] == "url" and message in error["message"]


async def test_production_requires_https() -> None:
    guard = Guard([], require_https=True)
    with pytest.raises(ValidationFailed, match="https"):
        await guard.check("http://93.184.216.34/hook")
    target = await guard.check("https://93.184.216.34/hook?x=1")
    assert (target.address, target.port, target.path) == ("93.184.216.34", 443, "/hook?x=1")
    assert Settings(environment="production").webhooks_need_https
    assert not Settings(environment="dev").webhooks_need_https


async def test_a_name_that_resolves_elsewhere_at_connect_time_is_refused() -> None:
    """DNS rebinding: public when saved, loopback when the worker connects."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    async def resolver(host: str, port: int) -> list[str]:
        return next(answers)

    guard = Guard([], require_https=False, resolver=resolver)
    assert (await guard.check("http://hooks.partner.example/x")).address == "93.184.216.34"
    with pytest.raises(ForbiddenAddress, match="loopback"):
        await guard.check("http://hooks.partner.example/x")


async def test_one_forbidden_address_among_several_refuses_the_name() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]

    with pytest.raises(ForbiddenAddress, match="private"):
        await Guard([], require_https=False, resolver=resolver).check("http://h.example/")


async def test_the_worker_checks_again_before_connecting(
    hook_tenants: TenantFactory, receiver: Receiver, db: Database, hook_settings: Settings,
    owner_conn: asyncpg.Connection,
) -> None:
    """Saved while loopback was allowed; a worker whose settings no longer allow it sends
    nothing, and the delivery log says why."""
    t = await hook_tenants.create()
    endpoint, _ = await create_endpoint(t.admin_caller, receiver.url, ["deal.*"])
    strict = hook_settings.model_copy(update={"webhook_allowed_networks": []})
    worker = Runner(db, strict, channel=channel_for(strict, LiveSettings()))
    task = asyncio.create_task(worker.run())
    try:
        pipeline = await default_pipeline(t.admin_caller)
        await create_deal(t.admin_caller, pipeline["id"], "x")
        deadline = asyncio.get_running_loop().time() + 20
        log = None
        while asyncio.get_running_loop().time() < deadline:
            page = (await t.admin_caller.ok(DELIVERIES, e=endpoint["id"], first=5)
                    )["webhookDeliveries"]["deliveries"]
            if page and page[0]["log"]:
                log = page[0]["log"][0]
                break
            await asyncio.sleep(0.1)
        assert log is not None
        assert log["statusCode"] is None
        assert "refused before connecting" in log["error"] and "loopback" in log["error"]
        assert receiver.requests == 0
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        await owner_conn.execute("UPDATE webhook_endpoints SET status = 'paused' "
                                 "WHERE tenant_id = $1", t.id)
