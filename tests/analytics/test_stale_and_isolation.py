"""Stale (rotting) deals, and tenant isolation of analytics."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from saas.db import Database
from tenants.principal import Role
from tests.analytics.history import History
from tests.analytics.test_funnel import ANALYTICS, LG, LQ, NA, gid, run, scenario  # noqa: F401
from tests.factories import TenantFactory

STALE = """
query($p: ID, $team: ID) { staleDeals(pipelineId: $p, teamId: $team) {
  ownerName deals { title stageName rottingDays daysInStage daysOverdue amount currency } } }"""


async def test_stale_deals_grouped_per_owner(tenants: TenantFactory, db: Database) -> None:
    t = await tenants.create()
    team = await t.add_team("Hunters")
    alice = await t.add_user(Role.REP, team_id=team, name="Alice")
    bob = await t.add_user(Role.REP, name="Bob")
    h = await History(db, t.id).load()
    async with db.unit_of_work(t.id) as uow:
        now = (await uow.session.execute(text("SELECT now()"))).scalar_one()
    ago = lambda d: now - timedelta(days=d)  # noqa: E731
    # LG and LQ rot after 14 days, NA after 21.
    await h.deal("a-old", alice.user_id, "10", "USD", [(LG, ago(30))])          # 16 overdue
    await h.deal("a-older", alice.user_id, "20", "USD", [(LG, ago(40)), (LQ, ago(20))])  # 6
    await h.deal("a-fresh", alice.user_id, "30", "USD", [(NA, ago(20))])         # 20 < 21
    await h.deal("b-old", bob.user_id, "40", "EUR", [(NA, ago(25))])             # 4 overdue
    await h.deal("b-won", bob.user_id, "50", "EUR", [(LG, ago(90)), ("Closing", ago(80))])
    data = await t.admin_caller.ok(STALE)
    groups = data["staleDeals"]
    assert [g["ownerName"] for g in groups] == ["Alice", "Bob"]
    alice_deals = [(d["title"], d["stageName"], round(d["daysOverdue"], 3))
                   for d in groups[0]["deals"]]
    # ordered by days overdue, most first: 30-14 = 16, 20-14 = 6
    assert [(x[0], x[1]) for x in alice_deals] == [("a-old", LG), ("a-older", LQ)]
    assert [x[2] for x in alice_deals] == [16.0, 6.0]  # now() is the same in one transaction
    assert [(d["title"], round(d["daysOverdue"])) for d in groups[1]["deals"]] == [("b-old", 4)]
    assert groups[1]["deals"][0]["amount"] == "40.00"
    # The team filter narrows to Alice's deals; a rep sees the same list (read access).
    only = await t.as_user(bob).ok(STALE, team=gid("Team", team))
    assert [g["ownerName"] for g in only["staleDeals"]] == ["Alice"]


async def test_tenant_b_cannot_see_tenant_a_analytics(
    scenario, tenants: TenantFactory  # noqa: F811
) -> None:
    a_pipeline = gid("Pipeline", scenario.h.pipelines["Default"])
    b = await tenants.create()
    body = await b.admin_caller.gql(ANALYTICS, p=a_pipeline, **{"from": "2026-01-05T00:00:00Z"},
                                    to="2026-02-02T00:00:00Z")
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    # B's stale list and its own pipeline's figures are empty, A's are not.
    assert (await b.admin_caller.ok(STALE))["staleDeals"] == []
    own = (await b.admin_caller.ok("query { segments { pipeline { id } } }"))["segments"]
    b_data = (await b.admin_caller.ok(
        ANALYTICS, p=own[0]["pipeline"]["id"], **{"from": "2026-01-05T00:00:00Z"},
        to="2026-02-02T00:00:00Z"))["pipelineAnalytics"]
    assert all(r["count"] == 0 for r in b_data["now"])
    assert b_data["outcomes"]["won"] == 0 and b_data["bottlenecks"] == []
    # A rep of tenant A sees the tenant's analytics (visible to all users).
    a = await run(scenario)
    rep_view = (await scenario.t.as_user(scenario.rep2).ok(
        ANALYTICS, p=a_pipeline, **{"from": "2026-01-05T00:00:00Z"},
        to="2026-02-02T00:00:00Z", asOf="2026-01-12T12:00:00Z"))["pipelineAnalytics"]
    assert rep_view["outcomes"] == a["outcomes"]
    assert rep_view["conversion"] == a["conversion"]
    assert by_stage_count(rep_view) == by_stage_count(a)


def by_stage_count(a: dict) -> list[tuple[str, int]]:  # type: ignore[type-arg]
    return [(r["name"], r["count"]) for r in a["now"]]


_ = NA
