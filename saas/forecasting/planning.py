"""Reverse revenue planning and backtesting on top of the pipeline Markov model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import ArrayLike

from saas.forecasting.model import (
    DEFAULT_PERIOD,
    DEFAULT_PRIOR,
    BoolArray,
    CurrentDeals,
    EventLog,
    FloatArray,
    Inflow,
    PriorConfig,
    Stage,
    StageKind,
    TransitionEstimate,
    WonForecast,
    estimate_inflow,
    estimate_transitions,
    kind_mask,
    project,
    stages_at,
    to_seconds,
    won_by_horizon,
)

# Guards ceil() against float noise such as 7.000000000001 leads.
_CEIL_SLACK = 1e-9


def _ceil_div(amount: float, value: float) -> int | None:
    """Smallest whole number of units of `value` covering `amount`; None if impossible."""
    if amount <= 0:
        return 0
    if value <= 0:
        return None
    return math.ceil(amount / value - _CEIL_SLACK)


@dataclass(frozen=True, eq=False)
class RevenuePlan:
    """What it takes to reach a revenue target within the horizon."""

    target: float
    pipeline_expected: float  # expected won amount from the current pipeline
    remaining: float  # max(target - pipeline_expected, 0)
    value_per_lead: float  # expected won amount of one new lead at the entry stage
    leads_needed: int | None  # None when a lead cannot be won within the horizon
    stage_value: FloatArray  # expected won amount of one deal now at each stage
    stage_deals_needed: tuple[int | None, ...]  # deals at that stage alone covering `remaining`


def plan_revenue(
    target: float,
    matrix: FloatArray,
    stages: Sequence[Stage],
    horizon: int,
    mean_won_amount: float,
    pipeline_expected: float,
    entry_stage: int | None = None,
    spread_arrivals: bool = False,
) -> RevenuePlan:
    """New leads (and per-stage deals) needed for the target beyond the pipeline's expectation."""
    won = kind_mask(stages, StageKind.WON)
    if horizon < 1:
        raise ValueError("horizon must be >= 1")
    if entry_stage is None:
        opens = [i for i, s in enumerate(stages) if s.kind is StageKind.OPEN]
        if not opens:
            raise ValueError("pipeline has no open stage to enter")
        entry_stage = opens[0]
    w = won_by_horizon(matrix, won, horizon)
    stage_value = w[:, horizon] * mean_won_amount
    if spread_arrivals:
        # Leads arriving evenly over the horizon get H, H-1, ..., 1 periods to close.
        lead_p = float(w[entry_stage, 1:].mean())
    else:
        lead_p = float(w[entry_stage, horizon])
    value_per_lead = lead_p * mean_won_amount
    remaining = max(target - pipeline_expected, 0.0)
    return RevenuePlan(
        target=target,
        pipeline_expected=pipeline_expected,
        remaining=remaining,
        value_per_lead=value_per_lead,
        leads_needed=_ceil_div(remaining, value_per_lead),
        stage_value=stage_value,
        stage_deals_needed=tuple(_ceil_div(remaining, float(v)) for v in stage_value),
    )


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Predicted vs actual outcome of the deals alive (not won) at as_of, h = 0..H."""

    estimate: TransitionEstimate
    predicted_occupancy: FloatArray  # (H+1, n_stages)
    actual_occupancy: FloatArray  # (H+1, n_stages)
    predicted: WonForecast
    actual_won_count: FloatArray
    actual_won_amount: FloatArray
    predicted_new_deals: FloatArray  # inflow model: rate * h
    actual_new_deals: FloatArray  # creations in (as_of, as_of + h * period]

    @property
    def won_count_error(self) -> FloatArray:
        """Predicted minus actual won count per horizon."""
        return self.predicted.count - self.actual_won_count

    @property
    def won_amount_error(self) -> FloatArray:
        """Predicted minus actual won amount per horizon."""
        return self.predicted.amount - self.actual_won_amount

    @property
    def occupancy_mae(self) -> FloatArray:
        """Mean absolute per-stage occupancy error per horizon."""
        mae: FloatArray = np.abs(self.predicted_occupancy - self.actual_occupancy).mean(axis=1)
        return mae

    @property
    def count_covered(self) -> BoolArray:
        """Whether the actual won count fell inside the predicted band."""
        low, high = self.predicted.count_band()
        covered: BoolArray = (low <= self.actual_won_count) & (self.actual_won_count <= high)
        return covered


def backtest(
    log: EventLog,
    stages: Sequence[Stage],
    amounts: ArrayLike,
    as_of: datetime,
    horizon: int,
    lookback_periods: int = 12,
    period: timedelta = DEFAULT_PERIOD,
    prior: PriorConfig = DEFAULT_PRIOR,
    band: float = 0.8,
) -> BacktestResult:
    """Fit on events before as_of, project the deals alive then and compare with what happened."""
    if horizon < 0 or lookback_periods < 0:
        raise ValueError("horizon and lookback_periods must be >= 0")
    amount = np.asarray(amounts, dtype=np.float64).ravel()
    if amount.size != log.n_deals:
        raise ValueError("amounts must have one entry per deal")
    n = len(stages)
    won = kind_mask(stages, StageKind.WON)
    t0, step = to_seconds(as_of), period.total_seconds()
    past = log.before(t0)
    start = as_of - lookback_periods * period
    est = estimate_transitions(past, stages, start, as_of, period, prior)
    inflow: Inflow = estimate_inflow(past, n, start, as_of, period)
    now = stages_at(past, [t0])[:, 0]
    cohort = (now >= 0) & ~won[np.maximum(now, 0)]
    deals = CurrentDeals(now[cohort], amount[cohort])
    proj = project(est.matrix, stages, deals, horizon, band=band)
    later = t0 + step * np.arange(1, horizon + 1)
    path = np.concatenate((now[cohort, None], stages_at(log, later)[cohort]), axis=1)
    actual_occ = np.stack([np.bincount(path[:, h], minlength=n) for h in range(horizon + 1)])
    is_won = won[path]
    new = log.created & (log.time > t0)
    new_times = np.sort(log.time[new])
    actual_new = np.searchsorted(new_times, np.concatenate(([t0], later)), side="right")
    return BacktestResult(
        estimate=est,
        predicted_occupancy=proj.occupancy,
        actual_occupancy=actual_occ.astype(np.float64),
        predicted=proj.pipeline,
        actual_won_count=is_won.sum(axis=0).astype(np.float64),
        actual_won_amount=amount[cohort] @ is_won,
        predicted_new_deals=inflow.rate * np.arange(horizon + 1, dtype=np.float64),
        actual_new_deals=actual_new.astype(np.float64),
    )
