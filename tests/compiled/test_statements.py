"""The compiled board, deal list and stage events: what the benchmarks send, answered
alike, each in one statement that enters the caller's tenant, whatever the board's size."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
from prometheus_client import REGISTRY

from saas.observability.statements import statements
from tests.compiled.compare import difference, ordered, post
from tests.compiled.world import World

BOARD = """query Q($p: ID!, $n: Int!) { board(pipelineId: $p, dealsPerStage: $n) {
  pipelineName columns { stage { id name kind position } dealCount
    deals { id title amount currency version owner { id name } contact { id name } } } } }"""
DEALS = """query Q($first: Int!) { deals(first: $first) { totalCount
  pageInfo { hasNextPage endCursor }
  edges { cursor node { id title amount currency version updatedAt customFields labels
    owner { id name email } contact { id name email company { id name } }
    company { id name domain } } } } }"""


def count(result: str) -> float:
    return REGISTRY.get_sample_value("saas_compiled_reads_total", {"result": result}) or 0


async def test_bench_queries_are_compiled_and_identical(
        apps: dict[str, httpx.AsyncClient], worlds: list[World]) -> None:
    world = worlds[0]
    headers = world.callers["admin"].headers
    for query, variables in ((BOARD, {"p": world.pipelines[0], "n": 25}),
                             (DEALS, {"first": 100}), (DEALS, {"first": 5})):
        expected = await post(apps["resolvers"], headers, query, variables)
        before = count("compiled")
        got = await post(apps["compiled"], headers, query, variables)
        assert count("compiled") == before + 1
        assert "errors" not in expected.json()
        assert difference(ordered(got.content), ordered(expected.content)) is None
    page = (await post(apps["compiled"], headers, DEALS, {"first": 5})).json()["data"]["deals"]
    assert page["totalCount"] == 25 and page["pageInfo"]["hasNextPage"] is True
    assert len(page["edges"]) == 5


async def test_a_cold_read_is_a_constant_number_of_statements_whatever_its_size(
        apps: dict[str, httpx.AsyncClient], worlds: list[World]) -> None:
    world = worlds[0]
    client = apps["compiled"]
    db = client._transport.app.state.services.db  # type: ignore[attr-defined]
    headers = world.callers["admin"].headers
    seen_by_size = {}

    async def warm() -> None:
        # The caller's auth state cached (it is re-read every AUTH_CACHE_TTL_SECONDS, 5 s:
        # on a slow CI box the loop below outlasted it once, and the re-read was counted).
        await post(client, headers, "query Q { me { tenantId } }", {})

    for n in (0, 1, 3, 100):
        await warm()
        async with statements(db) as seen:
            body = (await post(client, headers, BOARD, {"p": world.pipelines[0], "n": n})).json()
        assert "errors" not in body
        seen_by_size[n] = seen
    for n, seen in seen_by_size.items():
        # One statement, no transaction around it: board_rows enters the tenant first.
        assert len(seen) == 1 and "FROM board_rows(" in seen[0], (n, seen)
    assert len({seen[0] for seen in seen_by_size.values()}) == 1  # one text for all sizes
    # A deal list: one statement too, which enters the tenant (enter_tenant, migration 0022)
    # and builds the page's JSON; no transaction around it.
    for first in (1, 100):
        await warm()
        async with statements(db) as seen:
            body = (await post(client, headers, DEALS, {"first": first})).json()
        assert "errors" not in body and len(seen) == 1, seen
        assert "FROM enter_tenant(" in seen[0] and "json_build_object" in seen[0]


async def test_a_selection_that_needs_resolvers_goes_through_them(
        apps: dict[str, httpx.AsyncClient], worlds: list[World]) -> None:
    world = worlds[0]
    headers = world.callers["admin"].headers
    query = """query Q($p: ID!) { board(pipelineId: $p, dealsPerStage: 5) { columns { deals {
      id activities { id } history { seq kind } } } } }"""
    before = count("compiled"), count("unsupported")
    got = await post(apps["compiled"], headers, query, {"p": world.pipelines[0]})
    expected = await post(apps["resolvers"], headers, query, {"p": world.pipelines[0]})
    assert (count("compiled"), count("unsupported")) == (before[0], before[1] + 1)
    assert got.json() == expected.json() and "errors" not in got.json()
    assert any(d["history"] for c in got.json()["data"]["board"]["columns"] for d in c["deals"])


async def test_nothing_is_compiled_for_mutations_or_other_root_fields(
        apps: dict[str, httpx.AsyncClient], worlds: list[World]) -> None:
    world = worlds[0]
    headers = world.callers["admin"].headers
    before = count("compiled")
    body: Any = (await post(apps["compiled"], headers,
                            "query Q($p: ID!) { board(pipelineId: $p) { pipelineName } "
                            "segments { name } }", {"p": world.pipelines[0]})).json()
    assert body["data"]["board"]["pipelineName"] == "Default" and body["data"]["segments"]
    assert count("compiled") == before


async def test_root_fields_only_resolvers_serve_are_answered_beside_the_compiled_ones(
        apps: dict[str, httpx.AsyncClient], worlds: list[World]) -> None:
    """The statement answers the root fields it covers, the resolvers the others (the
    document cut to them), in the operation's key order, errors and all."""
    world = worlds[0]
    client = apps["compiled"]
    db = client._transport.app.state.services.db  # type: ignore[attr-defined]
    headers = world.callers["admin"].headers
    mixed = ("query Q($p: ID!) { segments { name } b: board(pipelineId: $p, dealsPerStage: 5) "
             "{ pipelineName columns { dealCount deals { id title } } } me { tenantId } "
             "__typename list: deals(first: 3) { totalCount edges { node { id } } } }")
    # A caller who may read contacts but not deals: `segments` is refused, and its error
    # nulls the whole answer (a non-null root field), on both paths.
    failing = "query Q { contactsConnection(first: 2) { totalCount } segments { name } }"
    fragment = "query Q { ... on Query { segments { name } } deals(first: 2) { totalCount } }"
    for query, partial in ((mixed, 1), (failing, 1), (fragment, 0)):
        variables = {"p": world.pipelines[0]} if "$p" in query else {}
        headers = world.callers["contacts_only" if query is failing else "admin"].headers
        expected = await post(apps["resolvers"], headers, query, variables)
        await post(client, headers, "query Q { me { tenantId } }", {})  # auth state cached
        before = count("compiled"), count("partial")
        async with statements(db) as seen:
            got = await post(client, headers, query, variables)
        assert (count("compiled"), count("partial")) == (before[0], before[1] + partial)
        assert got.status_code == expected.status_code == 200
        assert difference(ordered(got.content), ordered(expected.content)) is None, query
        compiled = [s for s in seen if "FROM enter_tenant(" in s or "board_rows" in s]
        assert len(compiled) == partial, seen
    body = (await post(client, world.callers["admin"].headers, mixed,
                       {"p": world.pipelines[0]})).json()
    assert list(body["data"]) == ["segments", "b", "me", "__typename", "list"]
    assert body["data"]["list"]["totalCount"] == 25 and body["data"]["segments"]
    body = (await post(client, world.callers["contacts_only"].headers, failing, {})).json()
    assert body["data"] is None and body["errors"][0]["path"] == ["segments"]
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


EVENTS = """query Q($k: Int!, $after: String) { stageEvents(first: $k, after: $after) {
  endCursor hasMore events { cursor seq kind dealId toStageId amount occurredAt } } }"""


async def test_stage_events_page_through_the_log_one_statement_a_page(
        apps: dict[str, httpx.AsyncClient], worlds: list[World],
        owner_conn: asyncpg.Connection) -> None:
    world = worlds[0]
    client = apps["compiled"]
    db = client._transport.app.state.services.db  # type: ignore[attr-defined]
    headers = world.callers["admin"].headers
    expected = [r["seq"] for r in await owner_conn.fetch(
        "SELECT seq FROM stage_events WHERE tenant_id = $1 ORDER BY seq", world.tenant.id)]
    seen: list[int] = []
    after = None
    for _ in range(len(expected)):
        variables = {"k": 7, "after": after}
        want = await post(apps["resolvers"], headers, EVENTS, variables)
        await post(client, headers, "query Q { me { tenantId } }", {})  # auth state cached
        before = count("compiled")
        async with statements(db) as statements_seen:
            got = await post(client, headers, EVENTS, variables)
        assert count("compiled") == before + 1
        assert len(statements_seen) == 1 and "FROM enter_tenant(" in statements_seen[0]
        assert difference(ordered(got.content), ordered(want.content)) is None
        page = got.json()["data"]["stageEvents"]
        seen += [e["seq"] for e in page["events"]]
        after = page["endCursor"]
        if not page["hasMore"]:
            break
    assert seen == expected and len(expected) > 7
    # Past the end: no events, the cursor given back.
    end = (await post(client, headers, EVENTS, {"k": 7, "after": after})).json()
    assert end["data"]["stageEvents"] == {"endCursor": after, "hasMore": False, "events": []}


def _outer_first(node: dict[str, Any]) -> dict[str, Any] | None:
    """The join that enter_tenant feeds, from an EXPLAIN (FORMAT JSON) plan."""
    if node.get("Node Type") == "Nested Loop":
        return node
    for child in node.get("Plans", []):
        if (found := _outer_first(child)) is not None:
            return found
    return None


def _relations(node: dict[str, Any]) -> list[str]:
    found = [node["Relation Name"]] if "Relation Name" in node else []
    for child in node.get("Plans", []):
        found += _relations(child)
    return found


async def test_enter_tenant_runs_before_the_read_scans_a_row(
        worlds: list[World], owner_conn: asyncpg.Connection) -> None:
    """The ordering migration 0022 relies on, in PostgreSQL's own plans: a nested loop whose
    outer side is the enter_tenant function scan, the read on its inner (parameterised)
    side, for every kind of compiled read that is not a board."""
    from graphql import parse

    from schema.compiled.extension import TENANT, plan
    from tests.compiled.test_equality import SCHEMA

    world = worlds[0]
    reads = [
        (DEALS, {"first": 100}),
        (EVENTS, {"k": 10, "after": None}),
        ("query Q { contactsConnection(first: 5) { edges { node { name } } } }", {}),
        ("query Q($id: ID!) { node(id: $id) { ... on Deal { title } } }",
         {"id": world.deals[0]}),
    ]
    for query, variables in reads:
        found = plan(SCHEMA, parse(query), "Q", variables)
        assert found is not None and "FROM enter_tenant(" in found.sql
        args = [world.tenant.id if a is TENANT else a for a in found.args]
        explained = await owner_conn.fetchval(f"EXPLAIN (FORMAT JSON) {found.sql}", *args)
        root = json.loads(explained)[0]["Plan"]
        loop = _outer_first(root)
        assert loop is not None, root
        outer, inner = loop["Plans"]
        assert outer["Node Type"] == "Function Scan" and outer["Function Name"] == \
            "enter_tenant", loop
        # The inner side is gated on t.id (a one-time filter: checked once the outer row is
        # there), and every table the read scans is under it (its init plans run lazily,
        # when the inner side first needs them).
        assert "t.id IS NOT NULL" in (inner.get("One-Time Filter") or inner.get("Filter")
                                      or ""), inner
        assert _relations(root) == _relations(inner) and _relations(inner), query
