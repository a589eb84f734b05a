"""The flow model against the weighted-pipeline baseline (Σ amount x stage probability by
expected close month, the forecast of Pipedrive, HubSpot and Salesforce) on the same
backtest windows: better where the pipeline has real dynamics, equal where the configured
probabilities and close dates are exactly right."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from saas.forecasting.baseline import compare, weighted_pipeline
from saas.forecasting.model import Stage, StageKind, to_seconds
from tests.forecasting.simulate import MONTH, T0, simulate

# Cycles (demo -> lead, proposal -> demo), a slow proposal stage, reopenings from lost.
DYNAMIC = [Stage("lead", StageKind.OPEN, 0.1), Stage("demo", StageKind.OPEN, 0.3),
           Stage("proposal", StageKind.OPEN, 0.6), Stage("won", StageKind.WON, 1.0),
           Stage("lost", StageKind.LOST, 0.0)]
DYNAMIC_P = np.array([
    [0.50, 0.30, 0.00, 0.00, 0.20],
    [0.10, 0.50, 0.25, 0.00, 0.15],
    [0.00, 0.10, 0.80, 0.06, 0.04],  # slow: most proposals sit for months
    [0.00, 0.00, 0.00, 1.00, 0.00],
    [0.05, 0.00, 0.00, 0.00, 0.95],  # lost deals come back
])
# One open stage whose deals all close within the month: 30% won, 70% lost for good.
SIMPLE = [Stage("open", StageKind.OPEN, 0.3), Stage("won", StageKind.WON, 1.0),
          Stage("lost", StageKind.LOST, 0.0)]
SIMPLE_P = np.array([[0.0, 0.3, 0.7], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def _as_of(month: int) -> datetime:
    return T0 + month * MONTH


def test_weighted_pipeline_by_expected_close_month() -> None:
    as_of = _as_of(10)
    t0, m = to_seconds(as_of), MONTH.total_seconds()
    count, amount = weighted_pipeline(
        DYNAMIC, stage=[0, 1, 2, 2, 1], amount=[100, 200, 300, 400, 500],
        close_at=[t0 - 5 * 86400, t0 + 0.5 * m, t0 + 1.5 * m, np.nan, t0 + 7 * m],
        override=[np.nan, np.nan, 0.9, np.nan, np.nan], as_of=as_of, horizon=3)
    # Overdue (0.1 x 100) and in month 1 (0.3 x 200); month 2 the override (0.9 x 300);
    # no date and beyond the horizon are left out.
    assert count.tolist() == pytest.approx([0.0, 0.4, 0.9, 0.0])
    assert amount.tolist() == pytest.approx([0.0, 70.0, 270.0, 0.0])


def test_the_model_beats_the_weighted_pipeline_on_a_pipeline_with_dynamics() -> None:
    history = simulate(DYNAMIC_P, n_deals=6000, months=24, seed=15)
    # Reps set the expected close date a month after creation, as CRMs suggest by default.
    close_at = history.created_at + MONTH.total_seconds()
    override = np.full(history.amounts.size, np.nan)
    totals = {"model_count": 0.0, "baseline_count": 0.0, "model_amount": 0.0,
              "baseline_amount": 0.0}
    for month in (14, 16, 18, 20):  # four backtest windows of three months
        result = compare(history.log, DYNAMIC, history.amounts, close_at, override,
                         _as_of(month), horizon=3)
        assert result.actual_count[1:].sum() > 50  # enough wins to score
        for key, error in result.errors().items():
            totals[key] += float(error[1:].sum())
    assert totals["model_count"] < 0.35 * totals["baseline_count"], totals
    assert totals["model_amount"] < 0.35 * totals["baseline_amount"], totals


def test_where_the_probabilities_are_exactly_right_both_agree_within_noise() -> None:
    n_per_month = 400
    history = simulate(SIMPLE_P, n_deals=22 * n_per_month, months=24, seed=16)
    # Every deal closes in the month after the one it was created in: its true close date.
    m = MONTH.total_seconds()
    close_at = to_seconds(T0) + (np.floor((history.created_at - to_seconds(T0)) / m) + 2) * m
    override = np.full(history.amounts.size, np.nan)
    for month in (14, 17, 20):
        result = compare(history.log, SIMPLE, history.amounts, close_at, override,
                         _as_of(month), horizon=3)
        n = int((result.result.cohort_stage == 0).sum())  # open now (lost ones stay lost)
        assert n > 300
        noise = np.sqrt(n * 0.3 * 0.7)  # sd of the month's wins
        # Same forecast: the model learned 0.3 from ~4,800 transitions (sd of its estimate
        # x n is about a third of the outcome's noise).
        assert abs(result.model_count[1] - result.baseline_count[1]) < noise, result
        assert result.baseline_count[1] == pytest.approx(0.3 * n)
        # Later months: nothing but the prior's trace of reopenings (under one deal).
        assert result.model_count[2:].tolist() == pytest.approx([0, 0], abs=1.0)
        assert result.baseline_count[2:].tolist() == [0, 0]
        # And both are right within noise.
        for forecast in (result.model_count[1], result.baseline_count[1]):
            assert abs(forecast - result.actual_count[1]) < 3.5 * noise
        open_now = np.flatnonzero(result.result.cohort)[result.result.cohort_stage == 0]
        amount_noise = np.sqrt((0.3 * 0.7 * history.amounts[open_now] ** 2).sum())
        assert abs(result.model_amount[1] - result.baseline_amount[1]) < amount_noise


def test_reverse_planning_from_the_fitted_model_matches_the_analytic_answer() -> None:
    from saas.forecasting.model import estimate_transitions, kind_mask
    from saas.forecasting.planning import plan_revenue, won_by_horizon

    history = simulate(DYNAMIC_P, n_deals=6000, months=24, seed=17)
    as_of = _as_of(22)
    fitted = estimate_transitions(history.log, DYNAMIC, as_of - 12 * MONTH, as_of)
    target, mean_amount, horizon = 1_000_000.0, 10_000.0, 3
    plan = plan_revenue(target, fitted.matrix, DYNAMIC, horizon, mean_amount,
                        pipeline_expected=250_000.0, spread_arrivals=True)
    # Analytic: a lead entering `lead` evenly over three months wins by the horizon with the
    # mean of P^h[lead, won] for h = 1..3 under the true matrix.
    true_w = won_by_horizon(DYNAMIC_P, kind_mask(DYNAMIC, StageKind.WON), horizon)
    analytic_leads = 750_000.0 / (true_w[0, 1:].mean() * mean_amount)
    assert plan.remaining == 750_000.0
    assert plan.remaining / plan.value_per_lead == pytest.approx(analytic_leads, rel=0.05)
    assert plan.leads_needed == pytest.approx(analytic_leads, rel=0.05)
    for stage in range(3):  # deals needed per open stage, each alone
        analytic = 750_000.0 / (true_w[stage, horizon] * mean_amount)
        assert plan.stage_deals_needed[stage] == pytest.approx(analytic, rel=0.05)
