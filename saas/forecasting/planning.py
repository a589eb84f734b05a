"""Forward projection, per-owner roll-ups, reverse revenue planning and backtests."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike

from saas.forecasting.model import (
    DEFAULT_PERIOD,
    DEFAULT_PRIOR,
    BoolArray,
    EventLog,
    FloatArray,
    Inflow,
    IntArray,
    PriorConfig,
    Stage,
    StageKind,
    TransitionEstimate,
    estimate_inflow,
    estimate_transitions,
    kind_mask,
    stages_at,
    to_seconds,
)


@dataclass(frozen=True, eq=False)
class CurrentDeals:
    """Deals to project: stage index, amount and an optional owner/team key per deal."""

    stage: IntArray
    amount: FloatArray
    key: tuple[Hashable, ...] | None = None

    @classmethod
    def build(
        cls, stage: ArrayLike, amount: ArrayLike, key: Sequence[Hashable] | None = None
    ) -> CurrentDeals:
        """Coerce and validate the per-deal arrays."""
        s = np.asarray(stage, dtype=np.int64).ravel()
        a = np.asarray(amount, dtype=np.float64).ravel()
        if s.size != a.size or (key is not None and len(key) != s.size):
            raise ValueError("stage, amount and key must have one entry per deal")
        return cls(s, a, None if key is None else tuple(key))


def normal_band(mean: FloatArray, var: FloatArray, band: float) -> tuple[FloatArray, FloatArray]:
    """Normal-approximation central band mean -/+ z * sd, clipped at 0."""
    half = NormalDist().inv_cdf(0.5 + band / 2) * np.sqrt(np.maximum(var, 0.0))
    return np.maximum(mean - half, 0.0), mean + half


@dataclass(frozen=True, eq=False)
class WonForecast:
    """Won count and amount per horizon h = 0..H: means, variances and a central band."""

    count: FloatArray
    count_var: FloatArray
    amount: FloatArray
    amount_var: FloatArray
    band: float = 0.8  # central probability of the band, 0.8 = 10%..90%

    def __post_init__(self) -> None:
        """Reject degenerate band levels."""
        if not 0 < self.band < 1:
            raise ValueError("band must be in (0, 1)")

    def count_band(self) -> tuple[FloatArray, FloatArray]:
        """(low, high) won count per horizon."""
        return normal_band(self.count, self.count_var, self.band)

    def amount_band(self) -> tuple[FloatArray, FloatArray]:
        """(low, high) won amount per horizon."""
        return normal_band(self.amount, self.amount_var, self.band)


@dataclass(frozen=True, eq=False)
class Projection:
    """Expected occupancy and won totals for horizons 0..H plus per-deal won probabilities."""

    occupancy: FloatArray  # (H+1, n_stages) expected deals per stage, inflow included
    deal_won: FloatArray  # (n_deals, H+1) P(deal is won by h)
    pipeline: WonForecast  # current deals only
    total: WonForecast  # current deals plus inflow (== pipeline without inflow)


def won_by_horizon(matrix: FloatArray, won: BoolArray, horizon: int) -> FloatArray:
    """W[s, h] = P(in a won stage after h periods | start in s) = (P^h @ 1_won)[s]."""
    w = np.empty((matrix.shape[0], horizon + 1))
    w[:, 0] = won
    for h in range(1, horizon + 1):
        w[:, h] = matrix @ w[:, h - 1]
    return np.clip(w, 0.0, 1.0)  # float drift must not give p(1-p) < 0


def _check_matrix(matrix: FloatArray, won: BoolArray) -> None:
    """Reject matrices that are not row-stochastic with absorbing won rows."""
    n = won.size
    if matrix.shape != (n, n) or (n and not np.allclose(matrix.sum(axis=1), 1.0)):
        raise ValueError("matrix must be n_stages x n_stages and row-stochastic")
    if not np.allclose(matrix[won], np.eye(n)[won]):
        raise ValueError("won rows must be absorbing")


def project(
    matrix: FloatArray,
    stages: Sequence[Stage],
    deals: CurrentDeals,
    horizon: int,
    inflow: Inflow | None = None,
    band: float = 0.8,
) -> Projection:
    """Project deals h = 0..horizon periods ahead: x_{h+1} = x_h P + inflow."""
    won = kind_mask(stages, StageKind.WON)
    _check_matrix(matrix, won)
    n = len(stages)
    if horizon < 0 or (deals.stage.size and not 0 <= deals.stage.min() <= deals.stage.max() < n):
        raise ValueError("horizon must be >= 0 and deal stages within the stage list")
    w = won_by_horizon(matrix, won, horizon)
    p = w[deals.stage]
    q = p * (1.0 - p)  # independent Bernoulli outcomes: Poisson-binomial moments
    pipeline = WonForecast(
        p.sum(axis=0), q.sum(axis=0), deals.amount @ p, np.square(deals.amount) @ q, band
    )
    v = np.zeros(n) if inflow is None else inflow.vector
    occ = np.empty((horizon + 1, n))
    occ[0] = np.bincount(deals.stage, minlength=n)
    for h in range(1, horizon + 1):
        occ[h] = occ[h - 1] @ matrix + v
    if inflow is None:
        return Projection(occ, p, pipeline, pipeline)
    # Arrivals of step j have had h - j transitions by h: expected won = sum_{m<h} v . W[:, m].
    new_won = np.concatenate(([0.0], np.cumsum(v @ w)[:-1]))
    # Poisson arrivals thinned by win probability stay Poisson: variance = mean.
    a = inflow.mean_amount
    total = WonForecast(
        pipeline.count + new_won,
        pipeline.count_var + new_won,
        pipeline.amount + a * new_won,
        pipeline.amount_var + a * a * new_won,
        band,
    )
    return Projection(occ, p, pipeline, total)


def aggregate_by_key(projection: Projection, deals: CurrentDeals) -> dict[Hashable, WonForecast]:
    """Sum per-deal won forecasts by deal key (owner/team); inflow is not attributed."""
    if deals.key is None:
        raise ValueError("deals have no keys to aggregate by")
    index: dict[Hashable, int] = {}
    codes = np.fromiter((index.setdefault(k, len(index)) for k in deals.key), np.int64)
    p = projection.deal_won
    q = p * (1.0 - p)
    a = deals.amount[:, None]
    g = len(index)

    def per_key(values: FloatArray) -> FloatArray:
        """Group sums, shape (groups, H+1)."""
        return np.stack([np.bincount(codes, weights=c, minlength=g) for c in values.T], axis=1)

    sums = [per_key(x) for x in (p, q, a * p, a * a * q)]
    return {
        k: WonForecast(sums[0][i], sums[1][i], sums[2][i], sums[3][i], projection.pipeline.band)
        for k, i in index.items()
    }


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
    cohort: BoolArray  # per deal of the log: alive (not won) at as_of
    cohort_stage: IntArray  # the cohort's stages at as_of

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
        cohort=cohort,
        cohort_stage=now[cohort],
    )
