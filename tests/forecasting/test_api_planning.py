"""The planning code through the API: forecastAccuracy beside the weighted-pipeline
baseline, revenuePlan, Deal.winProbability / expectedCloseMonth, and the typed projection."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import numpy as np
import pytest
from strawberry.relay import GlobalID

from saas.db import Database
from saas.forecasting import probability
from saas.forecasting.model import DEFAULT_PRIOR, Stage, StageKind, prior_matrix
from saas.forecasting.planning import CurrentDeals, plan_revenue, project
from saas.settings import Settings
from tenants.principal import Role
from tests.deals.ops import create_deal, default_pipeline, move, stage_ids
from tests.factories import TenantFactory
from tests.forecasting.test_jobs import READ, REQUEST, raw_id, run_burst_worker

ACCURACY = """query($p: ID!, $at: DateTime!) { forecastAccuracy(pipelineId: $p, asOf: $at,
  horizon: 1) { horizon predictedWonCount actualWonCount
  wonCountInMonth { model baseline actual modelError baselineError }
  wonAmountInMonth { model baseline actual modelError baselineError } } }"""
PLAN = """query($p: ID!, $amount: Decimal!, $c: String!, $by: Date!) {
  revenuePlan(pipelineId: $p, targetAmount: $amount, currency: $c, by: $by) {
    currency targetAmount horizonMonths pipelineExpected remaining averageWonAmount
    entryStageId valuePerLead leadsNeeded leadsPerMonth leadsArriveEvenly transitionsObserved
    stages { stageId kind valuePerDeal dealsNeeded } } }"""
PLAN_FOR = """query($p: ID!, $amount: Decimal!, $c: String!, $by: Date!, $owner: ID) {
  revenuePlan(pipelineId: $p, targetAmount: $amount, currency: $c, by: $by, ownerId: $owner) {
    pipelineExpected remaining valuePerLead } }"""
OUTLOOK = """query($id: ID!) { node(id: $id) { ... on Deal {
  winProbability expectedCloseMonth winProbabilitySource } } }"""
PROJECTION = """query($id: ID!) { node(id: $id) { ... on Forecast { projection {
  openDeals stages { stageId name kind } transitionMatrix
  horizons { months expectedWonCount occupancy { stageId deals }
             expectedWonAmount { currency amount low high } }
  byOwner { ownerId expectedWonCount expectedWonAmount { currency amounts } } } } } }"""
UPDATE = """mutation($input: UpdateDealInput!) { updateDeal(input: $input) { errors { code } } }"""
PROBABILITIES = [0.05, 0.10, 0.20, 0.40, 0.60, 1, 1, 0]


def _stages(pipeline: dict[str, Any]) -> list[Stage]:
    return [Stage(s["name"], StageKind[s["kind"]], p)
            for s, p in zip(pipeline["stages"], PROBABILITIES, strict=True)]


async def test_forecast_accuracy_reports_the_weighted_pipeline_baseline(
        tenants: TenantFactory, owner_conn: asyncpg.Connection) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    s = stage_ids(pipeline)
    now = datetime.now(UTC)
    as_of = now - timedelta(days=60)
    in_month = (as_of + timedelta(days=10)).date().isoformat()
    later = (as_of + timedelta(days=45)).date().isoformat()
    # Four deals created 80 days ago; at as_of two sit in Proposal (40%), two in Negotiation
    # (60%). Expected close in the first month for three of them, later for the fourth.
    deals = []
    for i, (stage, close) in enumerate([("Proposal", in_month), ("Proposal", later),
                                        ("Negotiation", in_month), ("Negotiation", in_month)]):
        d = await create_deal(admin, pipeline["id"], f"D{i}", amount=str(1000 * (i + 1)),
                              expectedCloseDate=close)
        assert (await move(admin, d["id"], s[stage], 1))["errors"] == []
        deals.append(d)
    # Two of them were won 40 days ago (inside the backtest month), the others stayed open.
    for d in deals[2:]:
        assert (await move(admin, d["id"], s["Closing"], 2))["errors"] == []
    ids = [raw_id(d["id"]) for d in deals]
    await owner_conn.execute(
        "UPDATE stage_events SET occurred_at = CASE WHEN kind = 'created' THEN $2::timestamptz "
        "WHEN to_stage_id = $4 THEN $3::timestamptz "
        "ELSE $2::timestamptz + interval '1 minute' END "
        "WHERE tenant_id = $1 AND deal_id = ANY($5)", t.id, now - timedelta(days=80),
        now - timedelta(days=40), raw_id(s["Closing"]), ids)

    (row,) = (await admin.ok(ACCURACY, p=pipeline["id"], at=as_of.isoformat()))[
        "forecastAccuracy"]
    count, amount = row["wonCountInMonth"], row["wonAmountInMonth"]
    # Baseline: 0.4 x D0 + 0.6 x D2 + 0.6 x D3 (D1 closes in month 2).
    assert count["baseline"] == pytest.approx(0.4 + 0.6 + 0.6)
    assert amount["baseline"] == pytest.approx(0.4 * 1000 + 0.6 * 3000 + 0.6 * 4000)
    assert (count["actual"], amount["actual"]) == (2.0, 7000.0)
    assert count["model"] == pytest.approx(row["predictedWonCount"])  # month 1 = cumulative
    assert count["modelError"] == pytest.approx(abs(count["model"] - 2.0))
    assert count["baselineError"] == pytest.approx(abs(1.6 - 2.0))
    assert amount["baselineError"] == pytest.approx(abs(4600.0 - 7000.0))


async def test_revenue_plan_uses_the_model_and_validates_its_input(
        tenants: TenantFactory) -> None:
    t, other = await tenants.create(), await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    s = stage_ids(pipeline)
    a = await create_deal(admin, pipeline["id"], "A", amount="1000")
    b = await create_deal(admin, pipeline["id"], "B", amount="3000")
    await move(admin, a["id"], s["Proposal"], 1)
    await move(admin, b["id"], s["Negotiation"], 1)
    await create_deal(admin, pipeline["id"], "Euro", amount="99999", currency="EUR")
    by = (datetime.now(UTC) + timedelta(days=75)).date()
    plan = (await admin.ok(PLAN, p=pipeline["id"], amount="100000", c="USD",
                           by=by.isoformat()))["revenuePlan"]
    # No whole period of history: the model is the prior of the configured probabilities.
    stages = _stages(pipeline)
    matrix = prior_matrix(stages, DEFAULT_PRIOR)
    horizon = plan["horizonMonths"]
    assert horizon == 3
    expected_pipeline = project(matrix, stages, CurrentDeals.build([3, 4], [1000.0, 3000.0]),
                                horizon).pipeline.amount[horizon]
    want = plan_revenue(100000.0, matrix, stages, horizon, 2000.0, expected_pipeline,
                        entry_stage=0, spread_arrivals=True)
    assert plan["transitionsObserved"] == 0
    assert plan["averageWonAmount"] == "2000.00"  # nothing won yet: the open deals' average
    assert plan["pipelineExpected"] == f"{expected_pipeline:.2f}"
    assert plan["leadsNeeded"] == want.leads_needed
    assert plan["valuePerLead"] == f"{want.value_per_lead:.2f}"
    assert plan["entryStageId"] == s["Lead generation"]
    assert [x["dealsNeeded"] for x in plan["stages"]] == list(want.stage_deals_needed[:5])
    assert plan["leadsArriveEvenly"] is True

    # One rep's plan: their open deals only (none here), the same model.
    rep = await t.add_user(Role.REP)
    mine = (await admin.ok(PLAN_FOR, p=pipeline["id"], amount="100000", c="USD",
                           by=by.isoformat(), owner=str(GlobalID("User", str(rep.user_id)))))
    assert mine["revenuePlan"]["pipelineExpected"] == "0.00"
    assert mine["revenuePlan"]["remaining"] == "100000.00"
    assert mine["revenuePlan"]["valuePerLead"] == plan["valuePerLead"]

    past = (date.today() - timedelta(days=1)).isoformat()
    for name, caller, variables, code, field in [
        ("zero target", admin, {"amount": "0", "c": "USD", "by": by.isoformat()},
         "VALIDATION_FAILED", "targetAmount"),
        ("past date", admin, {"amount": "10", "c": "USD", "by": past}, "VALIDATION_FAILED",
         "by"),
        ("too far", admin, {"amount": "10", "c": "USD", "by": "2099-01-01"},
         "VALIDATION_FAILED", "by"),
        ("bad currency", admin, {"amount": "10", "c": "usd", "by": by.isoformat()},
         "VALIDATION_FAILED", "currency"),
        ("no deals in it", admin, {"amount": "10", "c": "GBP", "by": by.isoformat()},
         "VALIDATION_FAILED", "currency"),
        ("other tenant", other.admin_caller, {"amount": "10", "c": "USD", "by": by.isoformat()},
         "NOT_FOUND", "pipelineId"),
    ]:
        body = await caller.gql(PLAN, p=pipeline["id"], **variables)
        assert body["data"] is None, name
        assert [(e["extensions"]["code"], e["extensions"].get("field"))
                for e in body["errors"]] == [(code, field)], name


async def test_win_probability_comes_from_the_latest_forecast_else_the_stage(
        tenants: TenantFactory, settings: Settings, db: Database) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    s = stage_ids(pipeline)
    close = date.today() + timedelta(days=40)
    deal = await create_deal(admin, pipeline["id"], "D", amount="1000",
                             expectedCloseDate=close.isoformat())
    assert (await move(admin, deal["id"], s["Proposal"], 1))["errors"] == []
    won = await create_deal(admin, pipeline["id"], "W")
    await move(admin, won["id"], s["Closing"], 1)
    first = (await admin.ok(OUTLOOK, id=deal["id"]))["node"]
    assert first == {"winProbability": 0.4, "winProbabilitySource": "STAGE_PROBABILITY",
                     "expectedCloseMonth": close.replace(day=1).isoformat()}
    assert (await admin.ok(OUTLOOK, id=won["id"]))["node"] == {
        "winProbability": 1.0, "winProbabilitySource": "WON", "expectedCloseMonth": None}

    requested = (await admin.ok(REQUEST, p=pipeline["id"], h=3))["requestForecast"]
    await run_burst_worker(settings, db)
    done = (await admin.ok(READ, id=requested["forecast"]["id"]))["node"]
    assert done["status"] == "DONE"
    expected = probability.outlook(raw_id(requested["forecast"]["id"]), done["result"])
    stage = expected.stages[raw_id(s["Proposal"])]
    learned = (await admin.ok(OUTLOOK, id=deal["id"]))["node"]
    assert learned["winProbabilitySource"] == "FORECAST"
    assert learned["winProbability"] == stage.win_probability
    assert 0 < learned["winProbability"] < 1
    assert stage.months_to_close is not None
    assert learned["expectedCloseMonth"] == probability.month_after(
        expected.as_of, stage.months_to_close).isoformat()
    # The deal's own override wins; a caller without analytics:read sees no forecast.
    await admin.ok(UPDATE, input={"dealId": deal["id"], "expectedVersion": 2,
                                  "probabilityOverride": "0.9"})
    overridden = (await admin.ok(OUTLOOK, id=deal["id"]))["node"]
    assert (overridden["winProbability"], overridden["winProbabilitySource"]) == (
        0.9, "OVERRIDE")
    reader = t.key_caller(await t.api_key("deals:read"))
    await admin.ok(UPDATE, input={"dealId": deal["id"], "expectedVersion": 3,
                                  "probabilityOverride": None})
    assert (await reader.ok(OUTLOOK, id=deal["id"]))["node"]["winProbabilitySource"] == \
        "STAGE_PROBABILITY"

    typed = (await admin.ok(PROJECTION, id=requested["forecast"]["id"]))["node"]["projection"]
    result = done["result"]
    assert typed["openDeals"] == result["openDeals"] == 1
    assert [x["stageId"] for x in typed["stages"]] == [st["id"] for st in pipeline["stages"]]
    assert [h["months"] for h in typed["horizons"]] == [1, 2, 3]
    for h, raw in zip(typed["horizons"], result["horizons"], strict=True):
        assert h["expectedWonCount"] == round(raw["expectedWonCount"], 4)
        assert {o["stageId"] for o in h["occupancy"]} == set(s.values())
        assert [a["currency"] for a in h["expectedWonAmount"]] == ["USD"]
    assert typed["byOwner"][0]["ownerId"] == str(GlobalID("User", str(t.admin.user_id)))
    assert np.allclose(typed["transitionMatrix"], result["matrix"], atol=1e-4)
