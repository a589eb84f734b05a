"""Deal histories as a random walk on a stage set: the one generator behind the demo tenant
(saas/demo/seed.py) and the benchmark data (bench/generate.py).

Everything is drawn from the caller's NumPy generator, in a fixed order, so the same seed
gives the same histories. A stage set is described by its layout: the open stages in order,
then the won stages (the first is the win, a second one is repeat business), then one lost
stage. Deals move forward and back, get lost with a reason, are reopened, and won deals move
on to the second won stage (and back); events that change no stage are field updates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Event kinds, as the `kind` array's codes index them.
KINDS = ("created", "moved", "lost", "reopened", "updated")
LOST_REASONS = ("price", "timing", "competitor", "no budget", "no decision", "went silent")


@dataclass(frozen=True)
class Layout:
    """Positions of a stage set: n_open open stages, then n_won won ones, then Lost."""

    n_open: int
    n_won: int

    @property
    def lost(self) -> int:
        return self.n_open + self.n_won

    @property
    def closing(self) -> int:
        return self.n_open

    @classmethod
    def of(cls, kinds: list[str] | tuple[str, ...]) -> Layout:
        """The layout of a stage set given its kinds in position order (open..., won..., lost)."""
        n_open, n_won = kinds.count("open"), kinds.count("won")
        expected = ["open"] * n_open + ["won"] * n_won + ["lost"]
        if list(kinds) != expected or n_open < 1 or not 1 <= n_won <= 2:
            raise ValueError(f"stage kinds must be open..., won (1-2), lost: {kinds}")
        return cls(n_open, n_won)


@dataclass
class Histories:
    """Events of D deals, grouped by deal (deal d's events are starts[d] .. starts[d]+n_ev[d]-1)."""

    n_ev: np.ndarray  # events per deal
    starts: np.ndarray  # index of each deal's first event
    ev_deal: np.ndarray  # deal of each event
    times: np.ndarray  # epoch seconds, strictly increasing per deal
    from_stage: np.ndarray  # -1 for `created`
    to_stage: np.ndarray
    kind: np.ndarray  # index into KINDS
    reason: np.ndarray  # index into LOST_REASONS for each event (meaningful for `lost`)
    seq: np.ndarray  # per-tenant sequence number, in time order (1..E)
    stage: np.ndarray  # each deal's current stage (its last event's to_stage)
    entered: np.ndarray  # index of the event that put each deal into its current stage
    last_lost: np.ndarray  # index of each deal's last `lost` event (-1: never lost)

    @property
    def n_events(self) -> int:
        return int(self.n_ev.sum())


def simulate(rng: np.random.Generator, deals: int, *, end_s: float, history_days: float,
             events_per_deal: float, layout: Layout, max_events: int = 60) -> Histories:
    """Histories of `deals` deals created over `history_days` before `end_s` (older deals
    have more events, about `events_per_deal` on average)."""
    D = deals
    age = rng.uniform(0.02, 1.0, D)  # fraction of the history
    t0 = end_s - age * history_days * 86400
    n_ev = np.minimum(1 + rng.poisson(2 * (events_per_deal - 1) * age), max_events)
    n_ev = n_ev.astype(np.int64)
    E = int(n_ev.sum())
    starts = np.concatenate(([0], np.cumsum(n_ev)[:-1])).astype(np.int64)
    ev_deal = np.repeat(np.arange(D), n_ev)
    ev_step = np.arange(E) - starts[ev_deal]
    # Times: exponential gaps, squeezed into [t0, end) per deal, strictly increasing.
    gaps = rng.exponential(12 * 86400, E)
    gaps[starts] = 0.0
    cum = np.cumsum(gaps)
    cum -= cum[starts][ev_deal]
    last = cum[starts + n_ev - 1]
    room = end_s - t0 - 3600 - n_ev  # keep a second between events, an hour before `end`
    factor = np.where(last > room, room / np.maximum(last, 1.0), 1.0)
    times = t0[ev_deal] + cum * factor[ev_deal] + ev_step

    lost, closing = layout.lost, layout.closing
    retention = closing + 1 if layout.n_won > 1 else None
    to_stage = np.empty(E, dtype=np.int64)
    from_stage = np.full(E, -1, dtype=np.int64)
    kind = np.empty(E, dtype=np.int64)
    first = min(3, layout.n_open)
    weights = np.array([0.7, 0.2, 0.1][:first])
    cur = rng.choice(first, D, p=weights / weights.sum())
    to_stage[starts] = cur
    kind[starts] = 0
    reason = rng.integers(0, len(LOST_REASONS), E)
    reopen_to = min(4, layout.n_open)
    for k in range(1, int(n_ev.max()) if E else 1):
        live = np.nonzero(n_ev > k)[0]
        idx = starts[live] + k
        c = cur[live]
        r = rng.random(live.size)
        new = c.copy()
        is_open = c < closing
        fwd = is_open & (r < 0.40)
        back = is_open & (c > 0) & (r >= 0.40) & (r < 0.50)
        lose = is_open & (r >= 0.50) & (r < 0.60)
        new[fwd] = c[fwd] + 1
        new[back] = c[back] - 1
        new[lose] = lost
        cl = c == closing
        if retention is not None:
            new[cl & (r < 0.25)] = retention
            new[(c == retention) & (r < 0.10)] = closing
        new[cl & (r >= 0.25) & (r < 0.35)] = closing - 1
        lo = c == lost
        reopen = lo & (r < 0.45)
        new[reopen] = rng.integers(0, reopen_to, int(reopen.sum()))
        kk = np.full(live.size, 1)  # moved
        kk[new == c] = 4  # updated
        kk[(new == lost) & (c != lost)] = 2  # lost
        kk[reopen] = 3  # reopened
        to_stage[idx], from_stage[idx], kind[idx] = new, c, kk
        cur[live] = new

    order = np.argsort(times, kind="stable")
    seq = np.empty(E, dtype=np.int64)
    seq[order] = np.arange(1, E + 1)
    # The event that put each deal into its current stage: its last non-update event.
    change_idx = np.where(kind != 4, np.arange(E), -1)
    entered = np.maximum.reduceat(change_idx, starts)
    last_lost = np.maximum.reduceat(np.where(kind == 2, np.arange(E), -1), starts)
    return Histories(n_ev=n_ev, starts=starts, ev_deal=ev_deal, times=times,
                     from_stage=from_stage, to_stage=to_stage, kind=kind, reason=reason,
                     seq=seq, stage=cur, entered=entered, last_lost=last_lost)
