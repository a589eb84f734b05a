"""node(id) applies each type's own read rule: every Node type of the schema x every
single-scope key, the aliases and every role. A caller without the scope gets FORBIDDEN
(before any lookup, so it learns nothing about existence); one with it gets the object."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from graphql import GraphQLObjectType
from strawberry.relay import GlobalID

from saas.settings import Settings
from schema.context import Context
from schema.nodes import NODE_SCOPES
from schema.root import build_schema
from tenants.principal import Principal, Role
from tenants.scopes import Scope
from tests.deals.ops import SEGMENTS, create_deal
from tests.factories import TenantFactory
from tests.tenants.scope_matrix import EXPECTED, OWN_QUERY

NODE = "query($id: ID!) { node(id: $id) { __typename id } }"


def node_types() -> set[str]:
    schema = build_schema(Settings())._schema  # type: ignore[attr-defined]
    return {name for name, t in schema.type_map.items() if isinstance(t, GraphQLObjectType)
            and any(i.name == "Node" for i in t.interfaces)}


def test_every_node_type_has_a_read_rule_equal_to_its_own_querys() -> None:
    types = node_types()
    assert types - set(NODE_SCOPES) == set(), "add the type to schema.nodes.NODE_SCOPES"
    assert types - set(OWN_QUERY) == set(), "add the type to scope_matrix.OWN_QUERY"
    assert {t: NODE_SCOPES[t] for t in types} == {t: EXPECTED[OWN_QUERY[t]] for t in types}


@pytest.fixture
async def objects(tenants: TenantFactory, owner_conn: asyncpg.Connection) -> dict[str, Any]:
    t = await tenants.create()
    admin = t.admin_caller
    segment = (await admin.ok(SEGMENTS))["segments"][0]
    pipeline = segment["pipeline"]
    deal = await create_deal(admin, pipeline["id"], "Node rules")
    activity = await admin.ok("""mutation($d: ID!) { createActivity(input: {dealId: $d,
      kind: CALL, subject: "call"}) { activity { id } errors { code } } }""", d=deal["id"])
    company = await admin.ok('mutation { createCompany(input: {name: "Co"}) { company { id } } }')
    contact = await admin.ok('mutation { createContact(input: {name: "Cy"}) { contact { id } } }')
    campaign = await admin.ok("""mutation { createCampaign(input: {name: "C", trigger: DEAL_WON,
      steps: [{subject: "Hi", body: "Hello"}]}) { campaign { id } errors { code message } } }""")
    # A forecast row as a finished job leaves it (requestForecast would leave a queued job
    # behind for other tests' workers).
    forecast_id = uuid.uuid4()
    await owner_conn.execute(
        "INSERT INTO forecasts (tenant_id, id, pipeline_id, horizon_months, status, request_key, "
        "result) VALUES ($1, $2, $3, 3, 'done', 'node-rules', '{}')", t.id, forecast_id,
        uuid.UUID(GlobalID.from_id(pipeline["id"]).node_id))
    team_id = await t.add_team("Node team")
    await t.api_key("read")
    key = (await admin.ok("query { apiKeys { id } }"))["apiKeys"][0]["id"]
    campaign_id = campaign["createCampaign"]["campaign"]["id"]
    enrollment_id = uuid.uuid4()
    await owner_conn.execute(
        "INSERT INTO campaign_enrollments (tenant_id, id, campaign_id, deal_id, trigger_key, "
        "anchor_at, enrolled_at) VALUES ($1, $2, $3, $4, 'event:1', now(), now())",
        t.id, enrollment_id, uuid.UUID(GlobalID.from_id(campaign_id).node_id),
        uuid.UUID(GlobalID.from_id(deal["id"]).node_id))
    ids = {
        "Segment": segment["id"], "Pipeline": pipeline["id"],
        "Stage": pipeline["stages"][0]["id"], "Deal": deal["id"],
        "Activity": activity["createActivity"]["activity"]["id"],
        "Company": company["createCompany"]["company"]["id"],
        "Contact": contact["createContact"]["contact"]["id"],
        "Campaign": campaign_id,
        "CampaignEnrollment": str(GlobalID("CampaignEnrollment", str(enrollment_id))),
        "Forecast": str(GlobalID("Forecast", str(forecast_id))),
        "User": str(GlobalID("User", str(t.admin.user_id))),
        "Team": str(GlobalID("Team", str(team_id))), "ApiKey": key,
    }
    principals: dict[str, Principal] = {
        f"key {s.value}": Principal(tenant_id=t.id, api_key_id=uuid.uuid4(),
                                    scopes=frozenset({s.value})) for s in Scope}
    for alias in ("read", "read_write", "admin"):
        principals[f"key {alias}"] = Principal(tenant_id=t.id, api_key_id=uuid.uuid4(),
                                               scopes=frozenset({alias}))
    principals["admin"] = t.admin
    principals["manager"] = await t.add_user(Role.MANAGER)
    principals["rep"] = await t.add_user(Role.REP)
    return {"ids": ids, "principals": principals}


async def test_node_applies_each_types_read_rule(app: Any, objects: dict[str, Any]) -> None:
    schema = build_schema(Settings(environment="test"))
    services = app.state.services
    assert set(objects["ids"]) == node_types()
    wrong = []
    for type_name, global_id in sorted(objects["ids"].items()):
        for who, principal in objects["principals"].items():
            result = await schema.execute(NODE, variable_values={"id": global_id},
                                          context_value=Context(services=services,
                                                                principal=principal))
            may = NODE_SCOPES[type_name] in principal.granted
            if may:
                ok = (result.errors is None and result.data is not None
                      and result.data["node"] == {"__typename": type_name, "id": global_id})
            else:
                ok = (result.data == {"node": None} and result.errors is not None
                      and result.errors[0].extensions == {"code": "FORBIDDEN"})
            if not ok:
                wrong.append((type_name, who, may, result.data, result.errors))
    assert wrong == []


async def test_a_forbidden_type_says_forbidden_even_for_ids_that_do_not_exist(
    app: Any, objects: dict[str, Any],
) -> None:
    schema = build_schema(Settings(environment="test"))
    rep = objects["principals"]["rep"]
    unknown = str(GlobalID("ApiKey", str(uuid.uuid4())))
    known = objects["ids"]["ApiKey"]
    results = [await schema.execute(NODE, variable_values={"id": i}, context_value=Context(
        services=app.state.services, principal=rep)) for i in (unknown, known)]
    assert [r.errors[0].message for r in results if r.errors] == [
        "your role (rep) does not allow this (needs 'users:admin')"] * 2
