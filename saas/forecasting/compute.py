"""From loaded pipeline data to a stored forecast result (plain JSON)."""

from __future__ import annotations

from collections import defaultdict
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
    currency = np.array([c for c, o in zip(deals.currency, still_open, strict=True) if o])
    owners = [o for o, keep in zip(deals.owner, still_open, strict=True) if keep]
    teams = [t for t, keep in zip(deals.team, still_open, strict=True) if keep]
    amount = current.amount

    horizons = []
    for h in range(1, horizon + 1):
        ph = p[:, h] if p.size else np.zeros(0)
        count, count_var = float(ph.sum()), float((ph * (1 - ph)).sum())
        by_currency = []
        for code in sorted(set(currency.tolist())):
            m = currency == code
            mean = float((amount[m] * ph[m]).sum())
            var = float((amount[m] ** 2 * ph[m] * (1 - ph[m])).sum())
            low, high = _band(mean, var)
            by_currency.append({"currency": code, "amount": mean, "low": low, "high": high})
        low, high = _band(count, count_var)
        horizons.append({
            "horizon": h,
            "occupancy": {str(sid): float(x) for sid, x in
                          zip(data.stage_ids, projection.occupancy[h], strict=True)},
            "expectedWonCount": count, "wonCountLow": low, "wonCountHigh": high,
            "expectedWonAmount": by_currency,
            "newDealsWonCount": float(projection.total.count[h] - projection.pipeline.count[h]),
        })
    per_owner: dict[tuple[str | None, str | None], dict[str, Any]] = {}
    for i, (owner, team) in enumerate(zip(owners, teams, strict=True)):
        key = (str(owner) if owner else None, str(team) if team else None)
        entry = per_owner.setdefault(key, {"ownerId": key[0], "teamId": key[1],
                                           "expectedWonCount": [0.0] * horizon,
                                           "amounts": defaultdict(lambda: [0.0] * horizon)})
        for h in range(1, horizon + 1):
            entry["expectedWonCount"][h - 1] += float(p[i, h])
            entry["amounts"][str(currency[i])][h - 1] += float(amount[i] * p[i, h])
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
        "byOwner": [
            {"ownerId": e["ownerId"], "teamId": e["teamId"],
             "expectedWonCount": e["expectedWonCount"],
             "expectedWonAmount": [{"currency": c, "amounts": v}
                                   for c, v in sorted(e["amounts"].items())]}
            for e in per_owner.values()
        ],
    }
