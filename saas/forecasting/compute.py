"""From loaded pipeline data to a stored forecast result (plain JSON)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np

from saas.forecasting.data import OpenDeals, PipelineData
from saas.forecasting.model import (
    DEFAULT_PERIOD,
    DEFAULT_PRIOR,
    StageKind,
    estimate_inflow,
    estimate_transitions,
    kind_mask,
)
from saas.forecasting.planning import CurrentDeals, normal_band, project

LOOKBACK_PERIODS = 12
BAND = 0.8


def _band(mean: float, var: float) -> tuple[float, float]:
    low, high = normal_band(np.array(mean), np.array(var), BAND)
    return float(low), float(high)


def forecast(data: PipelineData, deals: OpenDeals, *, horizon: int, as_of: datetime,
             include_inflow: bool) -> dict[str, Any]:
    """Estimate the transition matrix, project the open deals, summarise per currency/owner."""
    if not any(s.kind == StageKind.OPEN for s in data.stages):
        raise ValueError("the pipeline has no open stage to forecast")
    period = DEFAULT_PERIOD
    start = as_of - LOOKBACK_PERIODS * period
    estimate = estimate_transitions(data.log, data.stages, start, as_of, period, DEFAULT_PRIOR)
    won = kind_mask(data.stages, StageKind.WON)
    still_open = ~won[deals.stage] if deals.stage.size else np.zeros(0, dtype=bool)
    current = CurrentDeals.build(deals.stage[still_open], deals.amount[still_open])
    inflow = None
    if include_inflow:
        inflow = estimate_inflow(data.log, len(data.stages), start, as_of, period,
                                 amounts=data.amounts)
    projection = project(estimate.matrix, data.stages, current, horizon, inflow=inflow,
                         band=BAND)
    p = projection.deal_won  # (open deals, H+1)
    currency = deals.currency[still_open]
    owner = deals.owner[still_open]
    amount = current.amount
    n_currencies, n_owners = len(deals.currencies), len(deals.owners)
    by_name = sorted(range(n_currencies), key=deals.currencies.__getitem__)
    present = np.zeros(n_currencies, dtype=bool)
    present[currency] = True

    horizons = []
    for h in range(1, horizon + 1):
        ph = p[:, h] if p.size else np.zeros(0)
        count, count_var = float(ph.sum()), float((ph * (1 - ph)).sum())
        by_currency = []
        for code in (c for c in by_name if present[c]):
            m = currency == code
            mean = float((amount[m] * ph[m]).sum())
            var = float((amount[m] ** 2 * ph[m] * (1 - ph[m])).sum())
            low, high = _band(mean, var)
            by_currency.append({"currency": deals.currencies[code], "amount": mean,
                                "low": low, "high": high})
        low, high = _band(count, count_var)
        horizons.append({
            "horizon": h,
            "occupancy": {str(sid): float(x) for sid, x in
                          zip(data.stage_ids, projection.occupancy[h], strict=True)},
            "expectedWonCount": count, "wonCountLow": low, "wonCountHigh": high,
            "expectedWonAmount": by_currency,
            "newDealsWonCount": float(projection.total.count[h] - projection.pipeline.count[h]),
        })
    # Per owner (with the owner's team), in the order owners first appear among the deals.
    # bincount adds the weights one deal after another in deal order, so each sum is the
    # same float as a running total over that owner's deals.
    pair = owner * n_currencies + currency
    won_count = np.zeros((n_owners, horizon))
    won_amount = np.zeros((n_owners * n_currencies, horizon))
    for h in range(1, horizon + 1):
        won_count[:, h - 1] = np.bincount(owner, weights=p[:, h], minlength=n_owners)
        won_amount[:, h - 1] = np.bincount(pair, weights=amount * p[:, h],
                                           minlength=n_owners * n_currencies)
    has_pair = np.zeros(n_owners * n_currencies, dtype=bool)
    has_pair[pair] = True
    codes, first = np.unique(owner, return_index=True)
    by_owner = []
    for o in codes[np.argsort(first)].tolist():
        owner_id, team_id = deals.owners[o]
        by_owner.append({
            "ownerId": str(owner_id) if owner_id else None,
            "teamId": str(team_id) if team_id else None,
            "expectedWonCount": won_count[o].tolist(),
            "expectedWonAmount": [
                {"currency": deals.currencies[c],
                 "amounts": won_amount[o * n_currencies + c].tolist()}
                for c in by_name if has_pair[o * n_currencies + c]],
        })
    return {
        "asOf": as_of.isoformat(),
        "periodDays": period / timedelta(days=1),
        "lookbackPeriods": LOOKBACK_PERIODS,
        "priorWeight": DEFAULT_PRIOR.weight,
        "eventsUsed": int(data.log.deal.size),
        "transitionsObserved": int(estimate.counts.sum()),
        "openDeals": int(current.stage.size),
        "stages": [{"id": str(sid), "name": s.key, "kind": s.kind.name.lower()}
                   for sid, s in zip(data.stage_ids, data.stages, strict=True)],
        "matrix": estimate.matrix.round(6).tolist(),
        "inflowPerPeriod": float(inflow.rate) if inflow else 0.0,
        "horizons": horizons,
        "byOwner": by_owner,
    }
