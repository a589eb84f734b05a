"""The compiled contact and company lists and `node`: paged one by one they show every row
once, in the resolvers' order with the resolvers' cursors; each is one statement that
enters the caller's tenant; `node` is null for another tenant's id and FORBIDDEN without the
type's scope, on both paths."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from saas.observability.statements import statements
from tests.compiled.compare import difference, ordered, post
from tests.compiled.test_statements import count
from tests.compiled.world import World

LIST = """query Q($k: Int!, $after: String) {{ {root}(first: $k, after: $after) {{
  totalCount pageInfo {{ hasNextPage endCursor }}
  edges {{ cursor node {{ id name version __typename }} }} }} }}"""
NODE = """query Q($id: ID!) { node(id: $id) { id __typename
  ... on Contact { name email unsubscribed version company { name version } }
  ... on Company { name domain }
  ... on Deal { title owner { name } stage { name kind } pipeline { name } } } }"""


async def test_paging_one_by_one_shows_every_row_once_in_postgresql_order(
        apps: dict[str, httpx.AsyncClient], worlds: list[World],
        owner_conn: asyncpg.Connection) -> None:
    world = worlds[0]
    headers = world.callers["admin"].headers
    for root, table in (("contactsConnection", "contacts"),
                        ("companiesConnection", "companies")):
        query = LIST.format(root=root)
        expected_names = [r["name"] for r in await owner_conn.fetch(
            f"SELECT name FROM {table} WHERE tenant_id = $1 ORDER BY lower(name), id",
            world.tenant.id)]
        seen: list[str] = []
        after = None
        for _ in range(len(expected_names) + 1):
            variables = {"k": 1, "after": after}
            want = await post(apps["resolvers"], headers, query, variables)
            before = count("compiled")
            got = await post(apps["compiled"], headers, query, variables)
            assert count("compiled") == before + 1, (root, after)
            assert difference(ordered(got.content), ordered(want.content)) is None, \
                (root, difference(ordered(got.content), ordered(want.content)))
            page = got.json()["data"][root]
            assert page["totalCount"] == len(expected_names)
            seen += [e["node"]["name"] for e in page["edges"]]
            after = page["pageInfo"]["endCursor"]
            if not page["pageInfo"]["hasNextPage"]:
                break
        assert seen == expected_names, root
        # Past the end: an empty page, no end cursor, the same count.
        last = (await post(apps["compiled"], headers, query, {"k": 5, "after": after})).json()
        assert last["data"][root] == {"totalCount": len(expected_names), "pageInfo": {
            "hasNextPage": False, "endCursor": None}, "edges": []}


async def test_each_is_one_statement_that_enters_the_tenant(
        apps: dict[str, httpx.AsyncClient], worlds: list[World]) -> None:
    world = worlds[0]
    client = apps["compiled"]
    db = client._transport.app.state.services.db  # type: ignore[attr-defined]
    headers = world.callers["admin"].headers
    reads: list[tuple[str, dict[str, Any]]] = [
        (LIST.format(root="contactsConnection"), {"k": 200}),
        (LIST.format(root="companiesConnection"), {"k": 2}),
        *((NODE, {"id": id}) for id in (world.contacts[0], world.companies[0],
                                        world.deals[0])),
    ]
    for query, variables in reads:
        await post(client, headers, "query Q { me { tenantId } }", {})  # auth state cached
        before = count("compiled")
        async with statements(db) as seen:
            body = (await post(client, headers, query, variables)).json()
        assert "errors" not in body and count("compiled") == before + 1, body
        assert len(seen) == 1 and "FROM enter_tenant(" in seen[0], seen
        assert "json_build_object" in seen[0]


async def test_node_is_null_for_other_tenants_and_forbidden_without_the_scope(
        apps: dict[str, httpx.AsyncClient], worlds: list[World]) -> None:
    world, other = worlds
    cases = [
        ("admin", other.contacts[0], {"node": None}),
        ("admin", other.deals[0], {"node": None}),
        ("reader", world.deals[1], None),  # deals:read: found
    ]
    for caller, id, expected in cases:
        headers = world.callers[caller].headers
        want = (await post(apps["resolvers"], headers, NODE, {"id": id})).json()
        before = count("compiled")
        got = (await post(apps["compiled"], headers, NODE, {"id": id})).json()
        assert got == want and count("compiled") == before + 1, (caller, id, got)
        if expected is not None:
            assert got["data"] == expected and "errors" not in got
        else:
            assert got["data"]["node"]["id"] == id
    # Without the type's scope: the resolvers answer FORBIDDEN, on both paths alike.
    for caller, id in (("reader", world.contacts[0]), ("contacts_only", world.deals[0])):
        headers = world.callers[caller].headers
        want = (await post(apps["resolvers"], headers, NODE, {"id": id})).json()
        before = count("compiled")
        got = (await post(apps["compiled"], headers, NODE, {"id": id})).json()
        assert got == want and count("compiled") == before, (caller, got)
        assert [e["extensions"]["code"] for e in got["errors"]] == ["FORBIDDEN"]
    # The contact list, for a key with contacts:read only, is compiled.
    headers = world.callers["contacts_only"].headers
    before = count("compiled")
    got = (await post(apps["compiled"], headers, LIST.format(root="contactsConnection"),
                      {"k": 3})).json()
    assert count("compiled") == before + 1 and len(got["data"]["contactsConnection"]["edges"]) == 3
