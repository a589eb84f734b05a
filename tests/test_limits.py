"""Per-operation limits: depth, aliases and tokens are refused before execution."""

from __future__ import annotations

from tests.factories import TenantFactory


async def test_depth_alias_and_token_limits(tenants: TenantFactory) -> None:
    t = await tenants.create()
    caller = t.admin_caller
    settings = tenants.settings
    deep = "query Deep { " + "node(id: \"x\") { ... on Deal { stage { " * 8 + "id" + " } } }" * 8 + " }"
    aliases = "query Many { " + " ".join(f"a{i}: me {{ tenantId }}" for i in range(
        settings.graphql_max_aliases + 1)) + " }"
    tokens = "query Long { me { " + "tenantId " * settings.graphql_max_tokens + "} }"

    results = [await caller.gql(q) for q in (deep, aliases, tokens)]
    ok = await caller.gql("query Fine { me { tenantId } }")

    messages = [r["errors"][0]["message"] for r in results]
    assert all(r.get("data") is None for r in results)
    assert "exceeds maximum operation depth" in messages[0]
    assert "aliases found" in messages[1] or "alias" in messages[1].lower()
    assert "token" in messages[2].lower()
    syntax = await caller.gql("query Broken { me { tenantId }")
    assert syntax["errors"][0]["message"].startswith("Syntax Error")
    assert ok["data"]["me"]["tenantId"] == str(t.id)
