"""The weighted-pipeline forecast every CRM shows, scored on the same backtest as the model.

Pipedrive, HubSpot and Salesforce forecast a month's wins as the sum, over open deals whose
expected close date falls in that month, of amount x probability (the deal's own override,
else its stage's configured probability). Deals with no expected close date are left out;
deals whose date is already past count in the first month (the "overdue" bucket those CRMs
show at the top of the current month).

`compare` runs the model's backtest (saas/forecasting/planning.py `backtest`) and scores
both per month h = 1..H — won count and won amount in (as_of + (h-1) periods, as_of + h] —
against what happened to the deals alive at as_of.

Expected close dates and overrides are the deals' current ones (the history of a date is
not recorded before issue 15's field history): if anything this flatters the baseline,
whose dates have been corrected since as_of.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import ArrayLike

from saas.forecasting.model import (
    DEFAULT_PERIOD,
    DEFAULT_PRIOR,
    EventLog,
    FloatArray,
    PriorConfig,
    Stage,
    to_seconds,
)
from saas.forecasting.planning import BacktestResult, backtest


def weighted_pipeline(stages: list[Stage] | tuple[Stage, ...], stage: ArrayLike,
                      amount: ArrayLike, close_at: ArrayLike, override: ArrayLike,
                      as_of: datetime, horizon: int, period: timedelta = DEFAULT_PERIOD,
                      ) -> tuple[FloatArray, FloatArray]:
    """(won count, won amount) per month 1..H, index 0 unused (always 0)."""
    s = np.asarray(stage, dtype=np.int64)
    a = np.asarray(amount, dtype=np.float64)
    close = np.asarray(close_at, dtype=np.float64)  # POSIX seconds, NaN: no date
    own = np.asarray(override, dtype=np.float64)  # NaN: none
    configured = np.array([st.probability for st in stages], dtype=np.float64)
    p = np.where(np.isnan(own), configured[s] if s.size else own, own)
    t0, step = to_seconds(as_of), period.total_seconds()
    with np.errstate(invalid="ignore"):
        month = np.where(np.isnan(close), -1, np.maximum(np.ceil((close - t0) / step), 1))
    count = np.zeros(horizon + 1)
    value = np.zeros(horizon + 1)
    dated = (month >= 1) & (month <= horizon)
    np.add.at(count, month[dated].astype(np.int64), p[dated])
    np.add.at(value, month[dated].astype(np.int64), (p * a)[dated])
    return count, value


@dataclass(frozen=True, eq=False)
class Comparison:
    """Per month h = 1..H (index 0 unused): model, baseline and actual wins."""

    result: BacktestResult
    model_count: FloatArray
    model_amount: FloatArray
    baseline_count: FloatArray
    baseline_amount: FloatArray
    actual_count: FloatArray
    actual_amount: FloatArray

    def errors(self) -> dict[str, FloatArray]:
        """Absolute errors per month of each forecast against what happened."""
        return {
            "model_count": np.abs(self.model_count - self.actual_count),
            "baseline_count": np.abs(self.baseline_count - self.actual_count),
            "model_amount": np.abs(self.model_amount - self.actual_amount),
            "baseline_amount": np.abs(self.baseline_amount - self.actual_amount),
        }


def _monthly(cumulative: FloatArray) -> FloatArray:
    out = np.zeros_like(cumulative)
    out[1:] = np.diff(cumulative)
    return out


def compare(log: EventLog, stages: list[Stage] | tuple[Stage, ...], amounts: ArrayLike,
            close_at: ArrayLike, override: ArrayLike, as_of: datetime, horizon: int,
            lookback_periods: int = 12, period: timedelta = DEFAULT_PERIOD,
            prior: PriorConfig = DEFAULT_PRIOR) -> Comparison:
    """Backtest the model and the weighted pipeline on the deals alive at as_of."""
    res = backtest(log, stages, amounts, as_of, horizon, lookback_periods, period, prior)
    cohort = res.cohort
    count, value = weighted_pipeline(
        stages, res.cohort_stage, np.asarray(amounts, dtype=np.float64)[cohort],
        np.asarray(close_at, dtype=np.float64)[cohort],
        np.asarray(override, dtype=np.float64)[cohort], as_of, horizon, period)
    return Comparison(
        result=res,
        model_count=_monthly(res.predicted.count), model_amount=_monthly(res.predicted.amount),
        baseline_count=count, baseline_amount=value,
        actual_count=_monthly(res.actual_won_count),
        actual_amount=_monthly(res.actual_won_amount))
