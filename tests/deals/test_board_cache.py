"""The board response cache: served only while nothing the board shows has changed.

Real PostgreSQL (the version triggers of migration 0007) and the real API app; the SQL a
request runs is counted with SQLAlchemy engine events, so a hit is visible as "no board
statement", and every write path that can change a board must make the next read fresh.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from prometheus_client import REGISTRY
from sqlalchemy import text

from saas.db import Database, create_engine
from saas.observability.statements import statements
from saas.settings import Settings
from schema.nodes import decode_id
from schema.response_cache import ResponseCache
from schema.root import build_schema
from tenants.principal import Scope
from tests.deals.ops import CREATE_SEGMENT, create_deal, default_pipeline, move, stage_ids
from tests.factories import Caller, TenantFactory, TenantHandle

CARDS = """
query($p: ID!, $n: Int!) { board(pipelineId: $p, dealsPerStage: $n) {
  pipelineName columns { stage { id name position } dealCount
    deals { id title amount version owner { id name teamId isActive }
            contact { id name phone unsubscribed company { id name } } } } } }"""
WITH_HISTORY = """
query($p: ID!) { board(pipelineId: $p) { columns { deals { id history { seq } } } } }"""


TRANSFER = """mutation($d: ID!, $p: ID!, $s: ID!) { transferDeal(input: {dealId: $d,
  toPipelineId: $p, toStageId: $s, expectedVersion: 2}) { errors { code message } } }"""


def board_statements(seen: list[str]) -> int:
    return sum("board_rows" in s for s in seen)


async def _version(owner_conn: asyncpg.Connection, tenant_id: uuid.UUID) -> int:
    value = await owner_conn.fetchval(
        "SELECT version FROM board_versions WHERE tenant_id = $1", tenant_id)
    return int(value or 0)


async def _setup(tenants: TenantFactory) -> tuple[TenantHandle, Caller, dict[str, Any], str]:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    contact = await admin.ok('mutation { createContact(input: {name: "Ann"}) '
                             '{ contact { id } } }')
    contact_id = contact["createContact"]["contact"]["id"]
    deal = await create_deal(admin, pipeline["id"], "first", contactId=contact_id)
    return t, admin, pipeline, deal["id"]


async def test_a_repeated_board_is_served_without_rendering(
        tenants: TenantFactory, app: Any) -> None:
    db = app.state.services.db
    _t, admin, pipeline, _ = await _setup(tenants)
    first = await admin.gql(CARDS, p=pipeline["id"], n=25)
    hits = REGISTRY.get_sample_value("saas_board_cache_total", {"result": "hit"}) or 0
    await admin.ok("query { me { tenantId } }")  # the caller's auth state is cached (5 s TTL)
    async with statements(db) as seen:
        again = await admin.gql(CARDS, p=pipeline["id"], n=25)
    assert again == first
    assert REGISTRY.get_sample_value("saas_board_cache_total", {"result": "hit"}) == hits + 1
    # One statement and no transaction: set the tenant and read the pipeline's board version.
    assert seen == ["SELECT enter_board_version($1, $2)"]
    # Other variables are another entry: rendered, then served.
    async with statements(db) as seen:
        fewer = await admin.gql(CARDS, p=pipeline["id"], n=0)
    assert board_statements(seen) == 1 and fewer != first


async def test_every_write_a_board_shows_makes_the_next_read_fresh(
        tenants: TenantFactory, app: Any, owner_conn: asyncpg.Connection) -> None:
    db = app.state.services.db
    t, admin, pipeline, deal_id = await _setup(tenants)
    stages = stage_ids(pipeline)
    deal_uuid = decode_id(deal_id, "Deal", field="id")

    async def board() -> dict[str, Any]:
        async with statements(db) as seen:
            data = await admin.ok(CARDS, p=pipeline["id"], n=25)
        assert board_statements(seen) == 1, "a write must invalidate the cached board"
        return data["board"]

    def card(b: dict[str, Any]) -> dict[str, Any]:
        return next(d for c in b["columns"] for d in c["deals"] if d["id"] == deal_id)

    await board()
    # A move (stage event).
    moved = await move(admin, deal_id, stages["Lead qualification"], 1)
    assert moved["errors"] == []
    b = await board()
    assert card(b)["version"] == 2
    assert next(c for c in b["columns"] if c["stage"]["name"] == "Lead qualification")["dealCount"] == 1
    # A deal edit through the API.
    await admin.ok('mutation($id: ID!) { updateDeal(input: {dealId: $id, title: "renamed", '
                   'expectedVersion: 2}) { errors { code } } }', id=deal_id)
    assert card(await board())["title"] == "renamed"
    # A stage rename.
    await admin.ok('mutation($id: ID!) { updateStage(input: {stageId: $id, name: "Q2"}) '
                   '{ errors { code } } }', id=stages["Lead qualification"])
    assert "Q2" in [c["stage"]["name"] for c in (await board())["columns"]]
    # Writes outside the API (a superuser's SQL) to users, contacts and companies.
    await owner_conn.execute("UPDATE deals SET owner_id = $2 WHERE id = $1", deal_uuid,
                             t.admin.user_id)
    assert card(await board())["owner"]["id"] is not None
    await owner_conn.execute("UPDATE users SET name = 'Renamed Owner' WHERE id = $1",
                             t.admin.user_id)
    assert card(await board())["owner"]["name"] == "Renamed Owner"
    await owner_conn.execute(
        "UPDATE contacts SET phone = '+100', unsubscribed_at = now() WHERE tenant_id = $1",
        t.id)
    contact = card(await board())["contact"]
    assert (contact["phone"], contact["unsubscribed"]) == ("+100", True)
    company = await admin.ok('mutation { createCompany(input: {name: "Acme"}) '
                             '{ company { id } } }')
    company_uuid = decode_id(company["createCompany"]["company"]["id"], "Company", field="id")
    await owner_conn.execute("UPDATE contacts SET company_id = $2 WHERE tenant_id = $1",
                             t.id, company_uuid)
    assert card(await board())["contact"]["company"]["name"] == "Acme"
    await owner_conn.execute("UPDATE companies SET name = 'Acme 2' WHERE id = $1", company_uuid)
    assert card(await board())["contact"]["company"]["name"] == "Acme 2"
    await owner_conn.execute("UPDATE pipelines SET name = 'Renamed' WHERE tenant_id = $1", t.id)
    assert (await board())["pipelineName"] == "Renamed"


async def test_the_version_moves_once_per_committed_transaction(
        tenants: TenantFactory, owner_conn: asyncpg.Connection) -> None:
    t, _admin, _pipeline, deal_id = await _setup(tenants)
    before = await _version(owner_conn, t.id)
    deal_uuid = decode_id(deal_id, "Deal", field="id")
    async with owner_conn.transaction():
        for i in range(5):
            await owner_conn.execute("UPDATE deals SET title = $2 WHERE id = $1", deal_uuid,
                                     f"t{i}")
    assert await _version(owner_conn, t.id) == before + 1
    tx = owner_conn.transaction()
    await tx.start()
    await owner_conn.execute("UPDATE deals SET title = 'rolled back' WHERE id = $1", deal_uuid)
    await tx.rollback()
    assert await _version(owner_conn, t.id) == before + 1
    # A table the board does not show (API keys) leaves it alone.
    await t.api_key(Scope.READ)
    assert await _version(owner_conn, t.id) == before + 1


async def test_another_tenant_never_gets_a_cached_board(tenants: TenantFactory) -> None:
    _a, admin_a, pipeline, _ = await _setup(tenants)
    b = await tenants.create()
    cached = await admin_a.ok(CARDS, p=pipeline["id"], n=25)
    assert cached["board"]["columns"]
    # The very same request body from tenant B: B cannot see A's pipeline.
    body = await b.admin_caller.gql(CARDS, p=pipeline["id"], n=25)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    # And without credentials: the authentication error, not the board.
    anonymous = await Caller(admin_a.client, {}).gql(CARDS, p=pipeline["id"], n=25)
    assert anonymous["data"] is None
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_caller_without_deals_read_never_gets_a_cached_board(
        tenants: TenantFactory) -> None:
    t, admin, pipeline, _ = await _setup(tenants)
    cached = await admin.ok(CARDS, p=pipeline["id"], n=25)
    assert cached["board"]["columns"]
    # Same tenant, same request body, a key that may read contacts but not deals.
    contacts_only = t.key_caller(await t.api_key("contacts:read"))
    body = await contacts_only.gql(CARDS, p=pipeline["id"], n=25)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_selections_beyond_the_board_tables_are_never_cached(
        tenants: TenantFactory, app: Any) -> None:
    db = app.state.services.db
    _t, admin, pipeline, _deal_id = await _setup(tenants)
    await admin.ok(WITH_HISTORY, p=pipeline["id"])
    async with statements(db) as seen:
        data = await admin.ok(WITH_HISTORY, p=pipeline["id"])
    assert board_statements(seen) == 1
    # seq 1 is the contact's creation (entity events share the tenant's sequence).
    assert [d["history"] for c in data["board"]["columns"] for d in c["deals"]] == [[{"seq": 2}]]
    # Errors are not cached either: a bad id is checked every time.
    for _ in range(2):
        body = await admin.gql(CARDS, p="bm90IGFuIGlk", n=25)
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_concurrent_misses_render_once_and_agree(tenants: TenantFactory, app: Any) -> None:
    db = app.state.services.db
    _t, admin, pipeline, _deal_id = await _setup(tenants)
    for i in range(30):
        await create_deal(admin, pipeline["id"], f"deal {i}")
    async with statements(db) as seen:
        bodies = await asyncio.gather(*(admin.gql(CARDS, p=pipeline["id"], n=25)
                                        for _ in range(20)))
    assert all(b == bodies[0] for b in bodies) and "errors" not in bodies[0]
    first = bodies[0]["data"]["board"]["columns"][0]
    assert (first["dealCount"], len(first["deals"])) == (31, 25)
    assert board_statements(seen) == 1


async def test_a_read_right_after_a_move_sees_it(tenants: TenantFactory) -> None:
    _t, admin, pipeline, deal_id = await _setup(tenants)
    stages = stage_ids(pipeline)
    version = 1
    for name in ("Lead qualification", "Proposal", "Lost", "Lead generation"):
        await admin.ok(CARDS, p=pipeline["id"], n=25)  # warm
        result = await move(admin, deal_id, stages[name], version,
                            reason="price" if name == "Lost" else None)
        assert result["errors"] == []
        version += 1
        board = (await admin.ok(CARDS, p=pipeline["id"], n=25))["board"]
        where = [c["stage"]["name"] for c in board["columns"]
                 for d in c["deals"] if d["id"] == deal_id]
        assert where == [name]


async def test_the_version_check_leaves_no_tenant_on_the_pooled_connection(
        tenants: TenantFactory, settings: Settings) -> None:
    t, _admin, _pipeline, _deal = await _setup(tenants)
    engine = create_engine(settings.resolved_app_database_url(), pool_size=1, max_overflow=0)
    db = Database(engine)
    cache = ResponseCache(build_schema(settings)._schema, db, max_entries=4,
                          max_entry_bytes=1 << 20)
    try:
        async with cache.enter(t.id) as lease:
            assert await lease.version() > 0
        # The same (only) connection, next user: no tenant set, so RLS shows nothing.
        async with db.unit_of_work(None) as uow:
            setting = (await uow.session.execute(
                text("SELECT current_setting('app.tenant_id', true)"))).scalar()
            deals = (await uow.session.execute(text("SELECT count(*) FROM deals"))).scalar()
        assert setting in (None, "") and deals == 0
    finally:
        await engine.dispose()


def test_the_cache_keeps_to_its_byte_budget(settings: Settings) -> None:
    cache = ResponseCache(build_schema(settings)._schema, db=None,  # type: ignore[arg-type]
                          max_entries=100, max_entry_bytes=400, max_bytes=1000)
    tenant = uuid.uuid4()
    keys = [cache.key(tenant, "query { board }", None, {"n": i}) for i in range(5)]
    for i, key in enumerate(keys):
        cache.put(key, 1, bytes([i]) * 300)
    # 1,000 bytes hold three 300-byte bodies: the two least recently used went first.
    assert [cache.get(k, 1) is not None for k in keys] == [False, False, True, True, True]
    assert cache.size_bytes == 900
    cache.put(keys[4], 2, b"x" * 100)  # a newer rendering replaces, and frees, the old one
    assert cache.size_bytes == 700 and cache.get(keys[4], 2) == b"x" * 100
    cache.put(keys[0], 1, b"y" * 401)  # larger than one entry may be: not kept
    assert cache.get(keys[0], 1) is None and cache.size_bytes == 700


async def test_a_write_to_one_pipeline_leaves_other_pipelines_boards_cached(
        tenants: TenantFactory, app: Any, owner_conn: asyncpg.Connection) -> None:
    db = app.state.services.db
    t, admin, pipeline, deal_id = await _setup(tenants)
    second = (await admin.ok(CREATE_SEGMENT, name="Second", stages=[
        {"name": "One", "kind": "OPEN"}, {"name": "Won", "kind": "WON", "probability": "1"},
        {"name": "Lost", "kind": "LOST", "probability": "0"}]))
    other = second["createSegment"]["segment"]["pipeline"]
    await create_deal(admin, other["id"], "elsewhere")

    async def rendered(p: dict[str, Any]) -> bool:
        async with statements(db) as seen:
            await admin.ok(CARDS, p=p["id"], n=25)
        return board_statements(seen) == 1

    assert await rendered(pipeline) and await rendered(other)
    assert not await rendered(pipeline) and not await rendered(other)  # both cached
    # A move on the first board: only the first board renders again.
    stages = stage_ids(pipeline)
    assert (await move(admin, deal_id, stages["Proposal"], 1))["errors"] == []
    assert await rendered(pipeline) and not await rendered(other)
    # A stage of the second pipeline renamed (by SQL, bypassing the API): only the second.
    await owner_conn.execute("UPDATE stages SET name = 'Uno' WHERE id = $1",
                             decode_id(other["stages"][0]["id"], "Stage", field="id"))
    assert not await rendered(pipeline) and await rendered(other)
    # A table every board shows (contacts): both.
    await owner_conn.execute("UPDATE contacts SET phone = '+2' WHERE tenant_id = $1", t.id)
    assert await rendered(pipeline) and await rendered(other)
    # A deal moved from the first pipeline to the second: both (old and new pipeline).
    moved = await admin.ok(TRANSFER, d=deal_id, p=other["id"], s=other["stages"][0]["id"])
    assert moved["transferDeal"]["errors"] == []
    assert await rendered(pipeline) and await rendered(other)
    assert not await rendered(pipeline) and not await rendered(other)
    # A pipeline id written into the document is known too; two boards in one document
    # follow the tenant's version (any write to either pipeline).
    literal = CARDS.replace("$p: ID!, ", "").replace("pipelineId: $p",
                                                     f'pipelineId: "{other["id"]}"')
    async with statements(db) as seen:
        await admin.ok(literal, n=25)
    assert "SELECT enter_board_version($1, $2)" in seen
    both = ('query($a: ID!, $b: ID!) { a: board(pipelineId: $a) { pipelineName } '
            'b: board(pipelineId: $b) { pipelineName } }')
    async with statements(db) as seen:
        await admin.ok(both, a=pipeline["id"], b=other["id"])
    assert "SELECT enter_tenant_board_version($1)" in seen
    assert "SELECT enter_board_version($1, $2)" not in seen
