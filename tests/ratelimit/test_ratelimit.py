"""Rate limits by query cost through two API processes sharing Redis: a key's bucket drains
and answers THROTTLED with a wait that is right; another key of the tenant keeps its own
budget; an operation costing more than the bucket holds is refused before it runs."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from saas.settings import Settings
from tests.conftest import TEST_SECRET
from tests.factories import TenantFactory
from tests.live.support import ApiServer

KEY_MAX, KEY_RATE, TENANT_MAX, TENANT_RATE = 1000, 20, 5000, 100
DEALS = "query($n: Int!) { deals(first: $n) { edges { node { id title } } } }"


@pytest.fixture(scope="module")
def limited_pair(owner_url: str, settings: Settings,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, ApiServer]]:
    logs = tmp_path_factory.mktemp("ratelimit-servers")
    plans = {"standard": {"key_maximum": KEY_MAX, "key_restore_rate": KEY_RATE,
                          "tenant_maximum": TENANT_MAX, "tenant_restore_rate": TENANT_RATE}}
    env = {"ENVIRONMENT": "test", "DATABASE_URL": owner_url, "REDIS_URL": settings.redis_url or "",
           "JWT_SECRET": TEST_SECRET, "UNSUBSCRIBE_SECRET": TEST_SECRET, "LOG_LEVEL": "WARNING",
           "RATE_LIMIT_PLANS": orjson.dumps(plans).decode(), "DB_POOL_SIZE": "4"}
    pair = (ApiServer(env, logs / "a.log"), ApiServer(env, logs / "b.log"))
    try:
        for server in pair:
            server.start()
        for server in pair:
            server.wait_ready()
        yield pair
    finally:
        for server in pair:
            server.stop()


async def _with_deals(tenants: TenantFactory, owner_conn: asyncpg.Connection, n: int) -> Any:
    t = await tenants.create()
    await owner_conn.execute(
        "INSERT INTO deals (tenant_id, id, pipeline_id, stage_id, title, amount, currency) "
        "SELECT $1, gen_random_uuid(), s.pipeline_id, s.id, 'deal ' || g, 1, 'USD' "
        "FROM (SELECT pipeline_id, id FROM stages WHERE tenant_id = $1 AND kind = 'open' "
        "ORDER BY position LIMIT 1) s, generate_series(1, $2) g", t.id, n)
    return t


async def _post(client: httpx.AsyncClient, server: ApiServer, secret: str,
                n: int) -> httpx.Response:
    return await client.post(f"{server.http}/graphql", json={"query": DEALS,
                                                            "variables": {"n": n}},
                             headers={"Authorization": f"Bearer {secret}"})


async def test_a_drained_key_is_throttled_with_the_right_wait_and_another_key_is_not(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
    limited_pair: tuple[ApiServer, ApiServer],
) -> None:
    t = await _with_deals(tenants, owner_conn, 100)
    first, second = await t.api_key("read"), await t.api_key("read")
    async with httpx.AsyncClient(timeout=30) as client:
        ok = await _post(client, limited_pair[0], first, 100)
        cost = ok.json()["extensions"]["cost"]
        assert ok.status_code == 200 and len(ok.json()["data"]["deals"]["edges"]) == 100
        requested = cost["requested"]
        assert cost["actual"] == 201 and requested >= cost["actual"]
        assert cost["throttleStatus"]["maximumAvailable"] == KEY_MAX
        assert cost["throttleStatus"]["restoreRate"] == KEY_RATE
        assert ok.headers["ratelimit-limit"] == str(KEY_MAX)
        throttled = None
        for i in range(20):  # alternate processes: the bucket is shared
            r = await _post(client, limited_pair[(i + 1) % 2], first, 100)
            if r.status_code == 429:
                throttled = r
                break
            assert r.status_code == 200, r.text
        assert throttled is not None, "the key's bucket never ran dry"
        body = throttled.json()
        [error] = body["errors"]
        assert "data" not in body
        assert error["extensions"]["code"] == "THROTTLED"
        available = error["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
        wait = error["extensions"]["retryAfterSeconds"]
        assert available < requested
        assert wait == max(1, math.ceil((requested - available) / KEY_RATE))
        assert throttled.headers["retry-after"] == str(wait)
        assert int(throttled.headers["ratelimit-remaining"]) == available
        # Another key of the same tenant has its own bucket (the tenant's has room).
        other = await _post(client, limited_pair[1], second, 100)
        assert other.status_code == 200, other.text
        # After the wait the first key may go again (on either process).
        await asyncio.sleep(wait + 0.2)
        again = await _post(client, limited_pair[1], first, 100)
        assert again.status_code == 200, again.text


async def test_a_partly_compiled_read_is_charged_what_it_asked_for(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
    limited_pair: tuple[ApiServer, ApiServer],
) -> None:
    """`me` is answered by its resolver beside the compiled deal list (a partial plan): the
    list's objects cannot be counted in the response, so nothing of its cost is refunded."""
    t = await _with_deals(tenants, owner_conn, 50)
    secret = await t.api_key("read")
    query = "query($n: Int!) { me { tenantId } deals(first: $n) { edges { node { id } } } }"
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"{limited_pair[0].http}/graphql",
                              json={"query": query, "variables": {"n": 50}},
                              headers={"Authorization": f"Bearer {secret}"})
    body = r.json()
    assert r.status_code == 200 and len(body["data"]["deals"]["edges"]) == 50
    assert body["data"]["me"] == {"tenantId": str(t.id)}
    cost = body["extensions"]["cost"]
    assert cost["actual"] == cost["requested"] > 100


async def test_an_operation_costing_more_than_the_bucket_is_refused_before_it_runs(
    tenants: TenantFactory, owner_conn: asyncpg.Connection,
    limited_pair: tuple[ApiServer, ApiServer],
) -> None:
    t = await _with_deals(tenants, owner_conn, 5)
    secret = await t.api_key("read")
    async with httpx.AsyncClient(timeout=30) as client:
        before = (await _post(client, limited_pair[0], secret, 5)).json()["extensions"]["cost"]
        big = await _post(client, limited_pair[1], secret, 1000)
        body = big.json()
        assert "data" not in body
        [error] = body["errors"]
        assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
        assert str(error["extensions"]["cost"]["requested"]) in error["message"]
        assert error["extensions"]["cost"]["maximumAvailable"] == KEY_MAX
        after = (await _post(client, limited_pair[0], secret, 5)).json()["extensions"]["cost"]
    # Nothing was charged for the refused one: the bucket only refilled meanwhile.
    spent = before["throttleStatus"]["currentlyAvailable"] - after["throttleStatus"][
        "currentlyAvailable"]
    assert spent <= after["actual"]
