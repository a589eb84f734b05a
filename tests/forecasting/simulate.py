"""Synthetic pipelines with known monthly transition matrices, for the model's tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from saas.forecasting.model import EventLog, to_seconds

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MONTH = timedelta(days=30)


@dataclass(frozen=True)
class History:
    log: EventLog
    amounts: NDArray[np.float64]
    created_at: NDArray[np.float64]  # POSIX seconds of each deal's creation


def simulate(true_p: NDArray[np.float64], *, n_deals: int, months: int, seed: int,
             entry: NDArray[np.float64] | None = None) -> History:
    """Deals created uniformly over the first months-2 months, entering `entry` (default:
    the first stage) and moving month by month through `true_p`; each event happens at a
    random moment of its month, so only month boundaries see the chain exactly."""
    rng = np.random.default_rng(seed)
    n_st, month = true_p.shape[0], MONTH.total_seconds()
    start = entry if entry is not None else np.eye(n_st)[0]
    born = rng.integers(0, months - 2, n_deals)
    born_at = np.zeros(n_deals)
    state = np.full(n_deals, -1)
    deal, time, stage, created = [], [], [], []
    cum = np.cumsum(true_p, axis=1)
    for k in range(months):
        alive = state >= 0
        nxt = state.copy()
        u = rng.random(int(alive.sum()))
        nxt[alive] = np.minimum((u[:, None] > cum[state[alive]]).sum(axis=1), n_st - 1)
        new = born == k
        nxt[new] = rng.choice(n_st, int(new.sum()), p=start)
        moved = np.flatnonzero(new | (alive & (nxt != state)))
        at = to_seconds(T0) + (k + rng.random(moved.size)) * month
        born_at[moved[new[moved]]] = at[new[moved]]
        deal.append(moved)
        time.append(at)
        stage.append(nxt[moved])
        created.append(new[moved])
        state = nxt
    log = EventLog.from_arrays(np.concatenate(deal), np.concatenate(time),
                               np.concatenate(stage), np.concatenate(created), n_deals=n_deals)
    return History(log, rng.gamma(2.0, 5000.0, n_deals), born_at)
