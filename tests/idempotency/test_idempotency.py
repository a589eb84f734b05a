"""Idempotency-Key: one effect per key across processes, equal responses, typed refusals."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import orjson

from tenants.principal import Role
from tests.deals.ops import CREATE_DEAL, default_pipeline
from tests.factories import TenantFactory
from tests.live.support import ApiServer


def _body(pipeline_id: str, title: str) -> bytes:
    return orjson.dumps({"query": CREATE_DEAL,
                         "variables": {"input": {"pipelineId": pipeline_id, "title": title}}})


async def _deals(owner_conn: asyncpg.Connection, tenant_id: uuid.UUID) -> int:
    return int(await owner_conn.fetchval("SELECT count(*) FROM deals WHERE tenant_id = $1",
                                         tenant_id))


async def test_fifty_concurrent_creates_with_one_key_through_two_processes_make_one_deal(
    tenants: TenantFactory, api_pair: tuple[ApiServer, ApiServer],
    owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    secret = await t.api_key("read_write")
    pipeline = await default_pipeline(t.admin_caller)
    body = _body(pipeline["id"], "only once")
    headers = {"Authorization": f"Bearer {secret}", "content-type": "application/json",
               "Idempotency-Key": f'"{uuid.uuid4()}"'}
    async with httpx.AsyncClient(timeout=60) as client:
        responses = await asyncio.gather(*(
            client.post(f"{api_pair[i % 2].http}/graphql", content=body, headers=headers)
            for i in range(50)))
    assert [r.status_code for r in responses] == [200] * 50
    assert len({r.content for r in responses}) == 1  # byte-for-byte the same answer
    data = responses[0].json()["data"]["createDeal"]
    assert data["errors"] == [] and data["deal"]["title"] == "only once"
    assert await _deals(owner_conn, t.id) == 1
    replayed = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == 49
    events = await owner_conn.fetchval(
        "SELECT count(*) FROM stage_events WHERE tenant_id = $1", t.id)
    assert events == 1


async def test_the_same_key_with_another_body_is_refused_and_runs_nothing(
    tenants: TenantFactory, client: httpx.AsyncClient, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    pipeline = await default_pipeline(t.admin_caller)
    headers = {**t.admin_caller.headers, "content-type": "application/json",
               "Idempotency-Key": "order-1234"}
    first = await client.post("/graphql", content=_body(pipeline["id"], "a"), headers=headers)
    assert first.json()["data"]["createDeal"]["errors"] == []
    other = await client.post("/graphql", content=_body(pipeline["id"], "b"), headers=headers)
    assert other.status_code == 422
    assert other.json() == {"errors": [{
        "message": "this Idempotency-Key was used for a different request; use a new key",
        "extensions": {"code": "IDEMPOTENCY_KEY_REUSED"}}]}
    assert await _deals(owner_conn, t.id) == 1
    # Another principal's identical key is its own: keys never cross callers.
    rep = await t.add_user(Role.REP)
    rep_headers = {**t.as_user(rep).headers, "content-type": "application/json",
                   "Idempotency-Key": "order-1234"}
    theirs = await client.post("/graphql", content=_body(pipeline["id"], "b"),
                               headers=rep_headers)
    assert theirs.status_code == 200 and theirs.json()["data"]["createDeal"]["errors"] == []
    assert await _deals(owner_conn, t.id) == 2


async def test_the_stored_response_expires(
    tenants: TenantFactory, client: httpx.AsyncClient, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    pipeline = await default_pipeline(t.admin_caller)
    headers = {**t.admin_caller.headers, "content-type": "application/json",
               "Idempotency-Key": "retry-me"}
    body = _body(pipeline["id"], "x")
    first = await client.post("/graphql", content=body, headers=headers)
    again = await client.post("/graphql", content=body, headers=headers)
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert await _deals(owner_conn, t.id) == 1
    expires = await owner_conn.fetchval(
        "SELECT expires_at - created_at FROM idempotency_keys WHERE tenant_id = $1", t.id)
    assert expires.total_seconds() == 86400
    await owner_conn.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 s' "
                             "WHERE tenant_id = $1", t.id)
    later = await client.post("/graphql", content=body, headers=headers)
    assert "idempotent-replayed" not in later.headers
    assert later.json()["data"]["createDeal"]["deal"]["id"] != \
        first.json()["data"]["createDeal"]["deal"]["id"]
    assert await _deals(owner_conn, t.id) == 2


async def test_a_failed_mutation_is_stored_and_leaves_nothing_behind(
    tenants: TenantFactory, client: httpx.AsyncClient, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    headers = {**t.admin_caller.headers, "content-type": "application/json",
               "Idempotency-Key": "bad-1"}
    body = _body("UGlwZWxpbmU6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw", "x")
    first = await client.post("/graphql", content=body, headers=headers)
    assert first.json()["data"]["createDeal"]["errors"][0]["code"] == "NOT_FOUND"
    again = await client.post("/graphql", content=body, headers=headers)
    assert again.content == first.content
    assert await _deals(owner_conn, t.id) == 0


async def test_queries_ignore_the_key_and_bad_keys_are_refused(
    tenants: TenantFactory, client: httpx.AsyncClient, owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    headers = {**t.admin_caller.headers, "Idempotency-Key": "q-1"}
    for _ in range(2):
        r = await client.post("/graphql", json={"query": "{ tenant { slug } }"}, headers=headers)
        assert r.json()["data"] == {"tenant": {"slug": t.slug}}
        assert "idempotent-replayed" not in r.headers
    assert await owner_conn.fetchval(
        "SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1", t.id) == 0
    pipeline = await default_pipeline(t.admin_caller)
    bad = await client.post("/graphql", content=_body(pipeline["id"], "x"),
                            headers={**headers, "content-type": "application/json",
                                     "Idempotency-Key": "has space"})
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert await _deals(owner_conn, t.id) == 0


async def test_a_repeat_while_the_first_runs_waits_then_gets_a_typed_in_progress_error(
    tenants: TenantFactory, settings: Any, owner_url: str, owner_conn: asyncpg.Connection,
) -> None:
    """The first request is held inside its transaction (the tenant's event counter is
    locked); a repeat waits up to IDEMPOTENCY_WAIT_SECONDS, then gets 409 with Retry-After;
    once the first commits, repeats replay its response."""
    from saas.app import create_app

    app = create_app(settings.model_copy(update={"idempotency_wait_seconds": 0.5,
                                                 "db_pool_size": 4, "db_max_overflow": 2}))
    t = await tenants.create()
    pipeline = await default_pipeline(t.admin_caller)
    headers = {**t.admin_caller.headers, "content-type": "application/json",
               "Idempotency-Key": "slow-1"}
    body = _body(pipeline["id"], "held")
    lock = await asyncpg.connect(owner_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await _held_first(app, t.id, body, headers, lock, owner_conn)
    finally:
        await lock.close()
    assert await _deals(owner_conn, t.id) == 1


async def _held_first(app: Any, tenant_id: uuid.UUID, body: bytes, headers: dict[str, str],
                      lock: asyncpg.Connection, owner_conn: asyncpg.Connection) -> None:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            tx = lock.transaction()
            await tx.start()
            await lock.execute("SELECT 1 FROM tenant_counters WHERE tenant_id = $1 FOR UPDATE",
                               tenant_id)
            first = asyncio.create_task(client.post("/graphql", content=body, headers=headers))
            for _ in range(200):
                if await owner_conn.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE 'INSERT INTO tenant_counters%'"):
                    break
                await asyncio.sleep(0.05)
            repeat = await client.post("/graphql", content=body, headers=headers)
            assert repeat.status_code == 409
            assert repeat.headers["retry-after"] == "1"
            assert repeat.json()["errors"][0]["extensions"]["code"] == \
                "IDEMPOTENCY_KEY_IN_PROGRESS"
            await tx.rollback()
            done = await first
            assert done.json()["data"]["createDeal"]["errors"] == []
            replay = await client.post("/graphql", content=body, headers=headers)
            assert replay.content == done.content


async def test_the_hourly_job_purges_expired_keys_only(
    tenants: TenantFactory, client: httpx.AsyncClient, owner_conn: asyncpg.Connection,
    db: Any,
) -> None:
    from workers.idempotency import purge_idempotency_keys

    t = await tenants.create()
    pipeline = await default_pipeline(t.admin_caller)
    for key in ("old", "new"):
        headers = {**t.admin_caller.headers, "content-type": "application/json",
                   "Idempotency-Key": key}
        await client.post("/graphql", content=_body(pipeline["id"], key), headers=headers)
    await owner_conn.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 s' "
                             "WHERE tenant_id = $1 AND key = 'old'", t.id)
    assert await purge_idempotency_keys({"db": db}) >= 1
    keys = await owner_conn.fetch("SELECT key FROM idempotency_keys WHERE tenant_id = $1", t.id)
    assert [k["key"] for k in keys] == ["new"]
