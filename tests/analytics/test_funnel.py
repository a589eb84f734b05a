"""Funnel analytics on a hand-built history; every expected figure is worked out by hand.

Period: [d0, d28) with d0 = Monday 2026-01-05 00:00 UTC; the previous period is [d-28, d0).
Default (SMB) pipeline positions: LG=1 Lead generation, LQ=2 Lead qualification,
NA=3 Needs analysis, P=4 Proposal, N=5 Negotiation, Closing=6 (won), Retention=7 (won),
Lost=8. Probabilities LG .05, LQ .10, NA .20, P .40, N .60.

    A rep1 1000 USD  LG d0, LQ d2, NA d5, LQ d7 (bounce), NA d9, P d12, Closing d20 (won)
    B rep1  500 USD  LG d1, LQ d3, Lost d6 "budget", LQ d10 (reopened), NA d15,
                     Lost d18 "competitor"
    C rep2 2000 EUR  LG d0, LQ d1, NA d4, P d8, N d10 (still there), override 0.5
    D rep2  300 USD  LG d2, LQ d4, LG d6 (back), LQ d8 (still there), amount -> 400 at d10
    E rep1  800 USD  LG d0, LQ d3, transferred to Enterprise/LQ d5, NA d7, Closing d11 (won)
    F rep2  100 USD  LG d-10, LQ d-8, Lost d-2 "no need"            (previous period)
    G rep1   50 USD  LG d-20, LQ d-19, NA d-18, P d-17, Lost d-15 "budget" (previous period)
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from strawberry.relay import GlobalID

from saas.analytics import service as analytics
from saas.db import Database
from tenants.principal import Principal, Role
from tests.analytics.history import History, day
from tests.factories import TenantFactory, TenantHandle

CREATE_SEGMENT = """
mutation($name: String!) { createSegment(input: {name: $name}) { errors { code } } }"""

ANALYTICS = """
query($p: ID!, $from: DateTime!, $to: DateTime!, $team: ID, $owner: ID, $asOf: DateTime) {
  pipelineAnalytics(pipelineId: $p, period: {from: $from, to: $to}, teamId: $team,
                    ownerId: $owner) {
    now: funnel { name count amounts { currency amount } }
    past: funnel(asOf: $asOf) { name count amounts { currency amount } }
    conversion { name kind reached advanced rate }
    timeInStage { name deals averageDays medianDays }
    outcomes { won lost winRate averageCycleDays wonAmounts { currency amount }
               velocityPerDay { currency amount }
               lostReasons { reason count amounts { currency amount } } }
    weightedValue { currency amount }
    openValue { currency amount }
    bottlenecks { name inflow outflow netInflow medianDays previousMedianDays
                  medianGrowthDays reasons }
  }
}"""

LG, LQ, NA, P, N = ("Lead generation", "Lead qualification", "Needs analysis", "Proposal",
                    "Negotiation")


def gid(kind: str, value: uuid.UUID) -> str:
    return str(GlobalID(kind, str(value)))


def money(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"currency": c, "amount": a} for c, a in pairs]


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in rows}


class Scenario:
    t: TenantHandle
    h: History
    rep1: Principal
    rep2: Principal
    north: uuid.UUID
    south: uuid.UUID


@pytest.fixture
async def scenario(tenants: TenantFactory, db: Database) -> Scenario:
    s = Scenario()
    s.t = await tenants.create()
    assert (await s.t.admin_caller.ok(CREATE_SEGMENT, name="Enterprise"))[
        "createSegment"]["errors"] == []
    s.north = await s.t.add_team("North")
    s.south = await s.t.add_team("South")
    s.rep1 = await s.t.add_user(Role.REP, team_id=s.north, name="Rep One")
    s.rep2 = await s.t.add_user(Role.REP, team_id=s.south, name="Rep Two")
    h = s.h = await History(db, s.t.id).load()
    r1, r2 = s.rep1.user_id, s.rep2.user_id
    await h.deal("A", r1, "1000", "USD", [(LG, day(0)), (LQ, day(2)), (NA, day(5)), (LQ, day(7)),
                                          (NA, day(9)), (P, day(12)), ("Closing", day(20))])
    await h.deal("B", r1, "500", "USD", [(LG, day(1)), (LQ, day(3)), ("Lost", day(6), "budget"),
                                         (LQ, day(10)), (NA, day(15)),
                                         ("Lost", day(18), "competitor")])
    await h.deal("C", r2, "2000", "EUR", [(LG, day(0)), (LQ, day(1)), (NA, day(4)), (P, day(8)),
                                          (N, day(10))], probability_override="0.5")
    await h.deal("D", r2, "300", "USD", [(LG, day(2)), (LQ, day(4)), (LG, day(6)), (LQ, day(8)),
                                         (LQ, day(10), "amount:400")])
    await h.deal("E", r1, "800", "USD", [(LG, day(0)), (LQ, day(3)),
                                         (LQ, day(5), "pipeline:Enterprise"), (NA, day(7)),
                                         ("Closing", day(11))])
    await h.deal("F", r2, "100", "USD", [(LG, day(-10)), (LQ, day(-8)),
                                         ("Lost", day(-2), "no need")])
    await h.deal("G", r1, "50", "USD", [(LG, day(-20)), (LQ, day(-19)), (NA, day(-18)),
                                        (P, day(-17)), ("Lost", day(-15), "budget")])
    return s


async def run(s: Scenario, pipeline: str = "Default", **extra: Any) -> dict[str, Any]:
    data = await s.t.admin_caller.ok(
        ANALYTICS, p=gid("Pipeline", s.h.pipelines[pipeline]), **{"from": day(0).isoformat()},
        to=day(28).isoformat(), asOf=day(7.5).isoformat(), **extra)
    result: dict[str, Any] = data["pipelineAnalytics"]
    return result


async def test_funnel_now_and_as_of_a_past_date(scenario: Scenario) -> None:
    a = await run(scenario)
    now = by_name(a["now"])
    # Now: D in LQ (amount updated to 400), C in N, A won; B, F, G lost (500+100+50 = 650).
    # E left for the Enterprise pipeline and is not counted here.
    assert [(r["name"], r["count"]) for r in a["now"]] == [
        (LG, 0), (LQ, 1), (NA, 0), (P, 0), (N, 1), ("Closing", 1), ("Retention", 0), ("Lost", 3)]
    assert now[LQ]["amounts"] == money(("USD", "400.00"))
    assert now[N]["amounts"] == money(("EUR", "2000.00"))
    assert now["Lost"]["amounts"] == money(("USD", "650.00"))
    # As of d7.5 (last event at or before): A LQ (d7 bounce), B Lost (d6), C NA (d4),
    # D LG (d6, amount still 300), E already transferred away (d5), F and G lost.
    past = by_name(a["past"])
    assert {k: v["count"] for k, v in past.items() if v["count"]} == {
        LG: 1, LQ: 1, NA: 1, "Lost": 3}
    assert past[LG]["amounts"] == money(("USD", "300.00"))
    assert past[LQ]["amounts"] == money(("USD", "1000.00"))
    assert past[NA]["amounts"] == money(("EUR", "2000.00"))


async def test_conversion_counts_each_deal_once_despite_bounces(scenario: Scenario) -> None:
    conv = by_name((await run(scenario))["conversion"])
    # LG: A, B, C, D, E reached (D twice, once counted); all later reached LQ: 5/5.
    assert (conv[LG]["reached"], conv[LG]["advanced"], conv[LG]["rate"]) == (5, 5, 1.0)
    # LQ: A, B, C, D, E reached. A, C -> NA; B -> NA after its reopening; D only bounced
    # back to LG; E was transferred away (its later moves are in another pipeline): 3/5.
    assert (conv[LQ]["reached"], conv[LQ]["advanced"], conv[LQ]["rate"]) == (5, 3, 0.6)
    # NA: A (-> P), B (-> Lost), C (-> P): 2/3.
    assert (conv[NA]["reached"], conv[NA]["advanced"]) == (3, 2)
    assert conv[NA]["rate"] == 0.6667  # rates print with four decimals
    # P: A (-> won), C (-> N): 2/2. N: C still there: 0/1.
    assert (conv[P]["reached"], conv[P]["advanced"], conv[P]["rate"]) == (2, 2, 1.0)
    assert (conv[N]["reached"], conv[N]["advanced"], conv[N]["rate"]) == (1, 0, 0.0)
    # Terminal stages have no conversion rate; B's two losses count once.
    assert (conv["Closing"]["reached"], conv["Closing"]["rate"]) == (1, None)
    assert (conv["Lost"]["reached"], conv["Lost"]["rate"]) == (1, None)


async def test_conversion_of_the_pipeline_a_deal_was_transferred_into(
    scenario: Scenario,
) -> None:
    a = await run(scenario, "Enterprise")
    conv = by_name(a["conversion"])
    # E arrived in Enterprise/LQ at d5 (transfer = entry), then NA d7, won d11.
    assert (conv[LQ]["reached"], conv[LQ]["advanced"]) == (1, 1)
    assert (conv[NA]["reached"], conv[NA]["advanced"]) == (1, 1)
    o = a["outcomes"]
    # Won 1, lost 0; cycle from E's first event anywhere (d0) to d11 = 11 days.
    assert (o["won"], o["lost"], o["winRate"], o["averageCycleDays"]) == (1, 0, 1.0, 11.0)
    # velocity = 1 x 800 x 1.0 / 11 = 72.7272..., printed in minor units
    assert o["velocityPerDay"][0]["amount"] == "72.73"
    times = by_name(a["timeInStage"])
    assert times[LQ]["averageDays"] == pytest.approx(2.0)  # d5..d7
    assert times[NA]["averageDays"] == pytest.approx(4.0)  # d7..d11


async def test_time_in_stage_accumulates_re_entries(scenario: Scenario) -> None:
    t = by_name((await run(scenario))["timeInStage"])
    # LG: A 2, B 2, C 1, D 2+2=4, E 3            -> avg 12/5 = 2.4, median 2
    assert (t[LG]["deals"], t[LG]["averageDays"], t[LG]["medianDays"]) == (5, 2.4, 2.0)
    # LQ: A 3+2=5, B 3+5=8, C 3, D 2+20=22 (clipped at d28; the amount update at d10 does
    # not end the stay), E 2                      -> avg 40/5 = 8, median 5
    assert (t[LQ]["deals"], t[LQ]["averageDays"], t[LQ]["medianDays"]) == (5, 8.0, 5.0)
    # NA: A 2+3=5, B 3, C 4                       -> avg 4, median 4
    assert (t[NA]["deals"], t[NA]["averageDays"], t[NA]["medianDays"]) == (3, 4.0, 4.0)
    # P: A 8, C 2 -> avg 5, median 5; N: C 18 (d10..d28)
    assert (t[P]["averageDays"], t[P]["medianDays"]) == (5.0, 5.0)
    assert (t[N]["averageDays"], t[N]["medianDays"]) == (18.0, 18.0)


async def test_win_rate_velocity_weighted_value_lost_reasons(scenario: Scenario) -> None:
    a = await run(scenario)
    o = a["outcomes"]
    # Closed in the period: A won (d20), B lost (d18; its d6 loss was reopened).
    # F and G closed before d0; E was won in Enterprise.
    assert (o["won"], o["lost"], o["winRate"]) == (1, 1, 0.5)
    assert o["wonAmounts"] == money(("USD", "1000.00"))
    assert o["averageCycleDays"] == pytest.approx(20.0)  # A: d0 -> d20
    # velocity = 1 won x 1000 avg x 0.5 win rate / 20 days = 25 USD per day
    assert [(v["currency"], float(v["amount"])) for v in o["velocityPerDay"]] == [("USD", 25.0)]
    assert o["lostReasons"] == [
        {"reason": "competitor", "count": 1, "amounts": money(("USD", "500.00"))}]
    # Open now: C 2000 EUR x 0.5 override = 1000 EUR; D 400 USD x 0.10 (LQ) = 40 USD.
    assert a["weightedValue"] == money(("EUR", "1000.00"), ("USD", "40.00"))
    assert a["openValue"] == money(("EUR", "2000.00"), ("USD", "400.00"))


async def test_bottlenecks_ranked(scenario: Scenario) -> None:
    b = (await run(scenario))["bottlenecks"]
    # Flows in [d0, d28) (entries vs exits):
    #   LG in 6 (A,B,C,D x2,E) out 6; LQ in 8 (A x2, B x2, C, D x2, E) out 7 (A x2, B x2, C,
    #   D, E's transfer); NA in 4 out 4; P in 2 out 2; N in 1 (C) out 0.
    # Previous period medians: LG (F 2, G 1) 1.5; LQ (F 6, G 1) 3.5; NA (G) 1; P (G) 2.
    # Growth: LG 2-1.5 = .5; LQ 5-3.5 = 1.5; NA 4-1 = 3; P 5-2 = 3; N no previous.
    # Rank: net inflow desc (LQ, N: +1), then growth desc (LQ 1.5 > N none), then
    # NA and P (+3, by position), then LG (+.5).
    assert [(x["name"], x["inflow"], x["outflow"], x["medianGrowthDays"]) for x in b] == [
        (LQ, 8, 7, 1.5), (N, 1, 0, None), (NA, 4, 4, 3.0), (P, 2, 2, 3.0), (LG, 6, 6, 0.5)]
    assert b[0]["reasons"] == ["inflow_exceeds_outflow", "time_in_stage_grew"]
    assert b[1]["reasons"] == ["inflow_exceeds_outflow"]
    assert b[2]["reasons"] == ["time_in_stage_grew"]
    assert (b[0]["medianDays"], b[0]["previousMedianDays"]) == (5.0, 3.5)


async def test_owner_and_team_filters(scenario: Scenario) -> None:
    s = scenario
    by_owner = await run(s, owner=gid("User", s.rep2.user_id))
    by_team = await run(s, team=gid("Team", s.south))
    for a in (by_owner, by_team):  # rep2 is South's only member: C, D, F
        assert a["outcomes"]["winRate"] is None  # nothing of rep2 closed in the period
        assert a["weightedValue"] == money(("EUR", "1000.00"), ("USD", "40.00"))
        conv = by_name(a["conversion"])
        assert (conv[LQ]["reached"], conv[LQ]["advanced"]) == (2, 1)  # C yes, D no
    north = await run(s, team=gid("Team", s.north))
    assert (north["outcomes"]["won"], north["outcomes"]["lost"]) == (1, 1)
    assert north["weightedValue"] == []


async def test_service_rejects_bad_periods(scenario: Scenario, db: Database) -> None:
    body = await scenario.t.admin_caller.gql(
        ANALYTICS, p=gid("Pipeline", scenario.h.pipelines["Default"]),
        **{"from": day(5).isoformat()}, to=day(1).isoformat())
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"
    async with db.unit_of_work(scenario.t.id) as uow:
        with pytest.raises(analytics.NotFound):
            await analytics.funnel(uow=uow, scope=analytics.Scope(uuid.uuid4()))
