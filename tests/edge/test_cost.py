"""The cost limit refuses what would be too much work before any of it runs, and nested lists
are batched (statements per request do not grow with the lists)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from saas.observability.statements import statements
from tests.campaigns.support import create_campaign, raw
from tests.deals.ops import CREATE_DEAL, default_pipeline
from tests.factories import TenantFactory

STEP = {"delayDays": 1, "subject": "Hi", "body": "About {{ deal.title }}"}
NESTED = ("{ campaigns(first: 100) { id enrollments(first: 500) { id campaign { id "
          "enrollments(first: 500) { id campaign { id enrollments(first: 500) { id } } } } } } }")
ALIASES = "{ " + " ".join(f"a{i}: deals(first: 200) {{ edges {{ node {{ id history {{ seq }} }} }} }}"
                          for i in range(30)) + " }"
BATCHED = """{ campaigns(first: 20) { id name steps { subject }
  enrollments(first: 10) { id status sends { id } campaign { id name enrollments(first: 5) { id } } } } }"""


def query_statements(seen: list[str]) -> list[str]:
    """The operation's reads (not transaction control or a new connection's set-up)."""
    return [s for s in seen if s.upper().startswith("SELECT") and " FROM CAMPAIGN" in s.upper()]


async def test_the_nested_campaigns_attack_is_refused_before_it_runs(
    tenants: TenantFactory, client: httpx.AsyncClient, app: Any
) -> None:
    t = await tenants.create()
    key = await t.api_key("read")
    for caller in (t.admin_caller, t.key_caller(key)):
        await caller.gql("{ me { tenantId } }")  # warm the caller's authorisation state
        async with statements(app.state.services.db) as seen:
            response = await client.post("/graphql", json={"query": NESTED}, headers={
                **caller.headers, "accept": "application/graphql-response+json"})
        assert response.status_code == 400
        body = response.json()
        assert "data" not in body
        error = body["errors"][0]
        assert error["extensions"]["code"] == "LIMIT_EXCEEDED"
        cost = error["extensions"]["cost"]
        assert cost["limit"] == 20_000 and cost["requested"] == 100 + 2 * 50_000 + 2 * 25_000_000 + 12_500_000_000
        # Only the caller's credential check may touch the database, never the operation.
        assert not [s for s in seen if "campaign" in s.lower()], seen


async def test_thirty_aliased_deal_pages_with_history_are_refused(
    tenants: TenantFactory, client: httpx.AsyncClient
) -> None:
    t = await tenants.create()
    body = await t.admin_caller.gql(ALIASES)
    assert body["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert body["errors"][0]["extensions"]["cost"]["requested"] == 30 * (1 + 200 + 200 + 200 * 20)
    assert "data" not in body


async def test_every_answer_reports_its_cost(tenants: TenantFactory) -> None:
    t = await tenants.create()
    body = await t.admin_caller.gql("query($n: Int!) { deals(first: $n) { edges { node { id owner { id } } } } }", n=40)
    assert body["extensions"]["cost"] == {"requested": 1 + 40 + 40 + 40, "limit": 20_000}


async def _campaigns_with_enrollments(tenants: TenantFactory, owner_conn: asyncpg.Connection,
                                      campaigns: int, per_campaign: int) -> Any:
    t = await tenants.create()
    caller = t.admin_caller
    pipeline = await default_pipeline(caller)
    deals = []
    for j in range(per_campaign):
        deal = (await caller.ok(CREATE_DEAL, input={"pipelineId": pipeline["id"], "title": f"d{j}"}))
        deals.append(raw(deal["createDeal"]["deal"]["id"]))
    for i in range(campaigns):
        campaign = await create_campaign(caller, name=f"c{i}", trigger="DEAL_WON", steps=[STEP])
        for j in range(per_campaign):
            await owner_conn.execute(
                "INSERT INTO campaign_enrollments (tenant_id, id, campaign_id, deal_id, trigger_key,"
                " anchor_at, status, next_step, enrolled_at) VALUES ($1, $2, $3, $4, $5, now(),"
                " 'active', 0, now() - make_interval(secs => $6))",
                t.id, uuid.uuid4(), raw(campaign["id"]), deals[j], f"k{i}-{j}", j)
    return t


@pytest.mark.parametrize("shape", [(2, 2), (8, 6)])
async def test_nested_lists_cost_the_same_statements_whatever_their_length(
    shape: tuple[int, int], tenants: TenantFactory, owner_conn: asyncpg.Connection, app: Any,
    request: pytest.FixtureRequest,
) -> None:
    t = await _campaigns_with_enrollments(tenants, owner_conn, *shape)
    await t.admin_caller.gql("{ me { tenantId } }")
    async with statements(app.state.services.db) as seen:
        data = await t.admin_caller.ok(BATCHED)
    assert len(data["campaigns"]) == shape[0]
    assert all(len(c["enrollments"]) == shape[1] for c in data["campaigns"])
    assert all(e["campaign"]["id"] == c["id"] for c in data["campaigns"] for e in c["enrollments"])
    # campaigns + steps, enrollments + sends, their campaigns + steps, those enrollments + sends
    assert len(query_statements(seen)) == 8, query_statements(seen)


VARIABLE_PAGES = "query($n: Int!) { " + " ".join(
    f"a{i}: deals(first: $n) {{ edges {{ node {{ id history {{ seq }} }} }} }}"
    for i in range(30)) + " }"


async def test_a_document_is_cached_only_once_its_cost_passed(
    tenants: TenantFactory, app: Any
) -> None:
    """Over-cost documents are not kept: a flood of distinct ones neither churns the document
    cache nor stays alive for the garbage collector to walk (tests/edge/test_stalls.py). The
    same document with variables that make it affordable is cached and runs."""
    documents = next(r for r in app.routes if getattr(r, "path", None) == "/graphql"
                     and hasattr(r, "methods")).endpoint.schema.documents
    t = await tenants.create()
    sha = hashlib.sha256(VARIABLE_PAGES.encode()).hexdigest()
    body = await t.admin_caller.gql(VARIABLE_PAGES, n=200)
    assert body["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert documents.cached(sha) is None
    size = documents.size_bytes
    body = await t.admin_caller.gql(VARIABLE_PAGES, n=2)
    assert "errors" not in body and body["data"]["a0"] == {"edges": []}
    assert documents.cached(sha) is not None and documents.size_bytes > size
    body = await t.admin_caller.gql(VARIABLE_PAGES, n=200)  # cached, and still refused
    assert body["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert documents.cached(sha) is not None
