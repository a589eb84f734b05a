"""Role x operation matrix for deals and pipeline configuration (see saas/deals/permissions)."""

from __future__ import annotations

from typing import Any

import pytest

from tenants.principal import Role, Scope
from tests.deals.ops import CREATE_SEGMENT, MOVE, create_deal, default_pipeline, stage_ids
from tests.factories import Caller, TenantFactory

UPDATE = """mutation($d: ID!, $v: Int!) { updateDeal(input: {dealId: $d, expectedVersion: $v,
  title: "renamed"}) { deal { title } errors { code } } }"""


@pytest.fixture
async def org(tenants: TenantFactory) -> dict[str, Any]:
    t = await tenants.create()
    team_a = await t.add_team("A")
    team_b = await t.add_team("B")
    people = {
        "manager_a": await t.add_user(Role.MANAGER, team_id=team_a),
        "rep_a": await t.add_user(Role.REP, team_id=team_a),
        "rep_a2": await t.add_user(Role.REP, team_id=team_a),
        "rep_b": await t.add_user(Role.REP, team_id=team_b),
    }
    callers: dict[str, Caller] = {name: t.as_user(p) for name, p in people.items()}
    callers["admin"] = t.admin_caller
    callers["key_rw"] = t.key_caller(await t.api_key(Scope.READ_WRITE))
    callers["key_read"] = t.key_caller(await t.api_key(Scope.READ))
    callers["key_pipelines"] = t.key_caller(await t.api_key("deals:read", "pipelines:write"))
    pipeline = await default_pipeline(t.admin_caller)
    return {"t": t, "callers": callers, "pipeline": pipeline, "stages": stage_ids(pipeline)}


# Who may edit/move a deal owned by rep_a (a member of team A)?
EDIT_REP_A_DEAL = {"admin": True, "key_rw": True, "manager_a": True, "rep_a": True,
                   "rep_a2": False, "rep_b": False, "key_read": False, "key_pipelines": False}


@pytest.mark.parametrize("actor", sorted(EDIT_REP_A_DEAL))
async def test_move_and_update_rep_a_deal(org: dict[str, Any], actor: str) -> None:
    callers = org["callers"]
    deal = await create_deal(callers["rep_a"], org["pipeline"]["id"], "rep A's deal")

    moved = (await callers[actor].ok(MOVE, deal=deal["id"], to=org["stages"]["Proposal"], v=1,
                                     reason=None))["moveDeal"]
    version = 2 if not moved["errors"] else 1
    updated = (await callers[actor].ok(UPDATE, d=deal["id"], v=version))["updateDeal"]

    allowed = EDIT_REP_A_DEAL[actor]
    assert (moved["errors"] == []) is allowed, moved
    assert (updated["errors"] == []) is allowed, updated
    if not allowed:
        assert moved["errors"][0]["code"] == updated["errors"][0]["code"] == "FORBIDDEN"


@pytest.mark.parametrize("actor,allowed", [("admin", True), ("key_pipelines", True),
                                           ("key_rw", False), ("manager_a", False),
                                           ("rep_a", False), ("key_read", False)])
async def test_only_admins_and_pipelines_write_keys_configure_segments(org: dict[str, Any], actor: str,
                                              allowed: bool) -> None:
    result = (await org["callers"][actor].ok(CREATE_SEGMENT, name=f"Seg {actor}",
                                             stages=None))["createSegment"]
    assert (result["errors"] == []) is allowed
    if not allowed:
        assert result["errors"][0]["code"] == "FORBIDDEN"


@pytest.mark.parametrize("actor", ["rep_b", "key_read", "manager_a"])
async def test_everyone_reads_every_deal(org: dict[str, Any], actor: str) -> None:
    deal = await create_deal(org["callers"]["rep_a"], org["pipeline"]["id"], "visible")
    data = await org["callers"][actor].ok("query { deals(first: 10) { edges { node { id } } } }")
    assert [e["node"]["id"] for e in data["deals"]["edges"]] == [deal["id"]]


async def test_rep_cannot_assign_deals_to_others_but_manager_can_within_team(
    org: dict[str, Any],
) -> None:
    from strawberry.relay import GlobalID

    t = org["t"]
    callers = org["callers"]
    rep_a2 = str(GlobalID("User", str((await t.add_user(Role.REP)).user_id)))
    by_rep = await callers["rep_a"].gql(
        "mutation($p: ID!, $o: ID!) { createDeal(input: {pipelineId: $p, title: \"x\", "
        "ownerId: $o}) { deal { id } errors { code field } } }",
        p=org["pipeline"]["id"], o=rep_a2)
    assert by_rep["data"]["createDeal"]["errors"] == [{"code": "FORBIDDEN", "field": "ownerId"}]
