"""Pipeline Markov model: stage events, boundary transition counts, prior blending, inflow."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

DEFAULT_PERIOD = timedelta(days=30)


class StageKind(enum.Enum):
    """Kind of a pipeline stage."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True)
class Stage:
    """One pipeline stage with its configured default win probability (0..1)."""

    key: str
    kind: StageKind
    probability: float

    def __post_init__(self) -> None:
        """Reject probabilities outside [0, 1]."""
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"stage {self.key!r}: probability must be within [0, 1]")


@dataclass(frozen=True)
class PriorConfig:
    """Prior chain parameters and the prior's weight in pseudo-observations per row."""

    weight: float = 20.0
    advance_rate: float = 0.3  # share of an open stage's deals that leave it per period
    reopen_rate: float = 0.02  # share of lost deals reopened per period

    def __post_init__(self) -> None:
        """Reject parameters outside their domain."""
        if self.weight < 0 or not 0 <= self.advance_rate <= 1 or not 0 <= self.reopen_rate <= 1:
            raise ValueError("weight must be >= 0 and rates within [0, 1]")


DEFAULT_PRIOR = PriorConfig()


def to_seconds(moment: datetime) -> float:
    """POSIX seconds of a datetime; naive datetimes are taken as UTC."""
    # datetime.timestamp() would read a naive value as server-local time.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True, eq=False)
class EventLog:
    """Stage events as flat arrays; deals are dense indices 0..n_deals-1, time in POSIX seconds."""

    deal: IntArray
    time: FloatArray
    to_stage: IntArray
    created: BoolArray  # creation events (from_stage was None)
    n_deals: int

    @classmethod
    def from_arrays(
        cls,
        deal: ArrayLike,
        time: ArrayLike,
        to_stage: ArrayLike,
        created: ArrayLike | None = None,
        n_deals: int | None = None,
    ) -> EventLog:
        """Build from arrays (time: datetime64 or seconds); created defaults to first events."""
        d = np.asarray(deal, dtype=np.int64).ravel()
        raw_t = np.asarray(time).ravel()
        if np.issubdtype(raw_t.dtype, np.datetime64):
            t = raw_t.astype("datetime64[us]").astype(np.int64) / 1e6
        else:
            t = raw_t.astype(np.float64)
        s = np.asarray(to_stage, dtype=np.int64).ravel()
        n = int(d.max()) + 1 if n_deals is None and d.size else int(n_deals or 0)
        if not d.size == t.size == s.size or (d.size and (d.min() < 0 or d.max() >= n)):
            raise ValueError("event arrays must align and deal indices lie in [0, n_deals)")
        if s.size and s.min() < 0:
            raise ValueError("stage indices must be non-negative")
        if created is None:
            # Without from_stage information each deal's earliest event is its creation.
            order = np.lexsort((t, d))
            first = np.ones(d.size, dtype=bool)
            first[1:] = d[order][1:] != d[order][:-1]
            c = np.zeros(d.size, dtype=bool)
            c[order] = first
        else:
            c = np.asarray(created, dtype=bool).ravel()
            if c.size != d.size:
                raise ValueError("created must align with the events")
        return cls(d, t, s, c, n)

    @classmethod
    def from_sequences(cls, sequences: Sequence[Sequence[tuple[datetime, int]]]) -> EventLog:
        """Build from per-deal (time, to_stage) sequences; each deal's first event creates it."""
        deal = [i for i, seq in enumerate(sequences) for _ in seq]
        time = [to_seconds(at) for seq in sequences for at, _ in seq]
        stage = [st for seq in sequences for _, st in seq]
        return cls.from_arrays(deal, time, stage, n_deals=len(sequences))

    def before(self, moment: float) -> EventLog:
        """The events strictly before a POSIX time."""
        m = self.time < moment
        return EventLog(self.deal[m], self.time[m], self.to_stage[m], self.created[m], self.n_deals)


def period_boundaries(start: datetime, end: datetime, period: timedelta) -> FloatArray:
    """Boundaries start + k*period (POSIX seconds) that fall inside [start, end]."""
    step = period.total_seconds()
    if step <= 0 or end < start:
        raise ValueError("period must be positive and end >= start")
    lo = to_seconds(start)
    # The epsilon keeps an exact multiple (e.g. 12 * 30 days) from losing its last boundary.
    k = math.floor((to_seconds(end) - lo) / step + 1e-9)
    return lo + step * np.arange(k + 1, dtype=np.float64)


def stages_at(log: EventLog, times: ArrayLike) -> IntArray:
    """Stage of every deal at each time (its last event at or before it), -1 before creation."""
    ts = np.asarray(times, dtype=np.float64).ravel()
    out = np.full((log.n_deals, ts.size), -1, dtype=np.int64)
    n_ev = log.deal.size
    if n_ev == 0:
        return out
    # Key = deal * (E + 1) + global time rank sorts events by (deal, time) with unique int keys,
    # so "last event of deal d at or before t" is a single searchsorted per boundary.
    by_time = np.argsort(log.time, kind="stable")
    rank = np.empty(n_ev, dtype=np.int64)
    rank[by_time] = np.arange(n_ev, dtype=np.int64)
    key = log.deal * (n_ev + 1) + rank
    order = np.argsort(key)
    sorted_key, sorted_deal = key[order], log.deal[order]
    sorted_stage, sorted_time = log.to_stage[order], log.time[by_time]
    deals = np.arange(log.n_deals, dtype=np.int64)
    for j, t in enumerate(ts):
        n_le = np.searchsorted(sorted_time, t, side="right")
        pos = np.searchsorted(sorted_key, deals * (n_ev + 1) + n_le, side="left") - 1
        safe = np.maximum(pos, 0)
        hit = (pos >= 0) & (sorted_deal[safe] == deals)
        out[hit, j] = sorted_stage[safe[hit]]
    return out


def kind_mask(stages: Sequence[Stage], kind: StageKind) -> BoolArray:
    """Boolean mask of the stages of one kind."""
    return np.array([s.kind is kind for s in stages], dtype=bool)


def prior_matrix(stages: Sequence[Stage], config: PriorConfig = DEFAULT_PRIOR) -> FloatArray:
    """Prior chain from the configured probabilities (see docs/forecasting.md)."""
    n = len(stages)
    prior = np.eye(n)
    open_ix = [i for i, s in enumerate(stages) if s.kind is StageKind.OPEN]
    won_ix = [i for i, s in enumerate(stages) if s.kind is StageKind.WON]
    lost_ix = [i for i, s in enumerate(stages) if s.kind is StageKind.LOST]
    a, r = config.advance_rate, config.reopen_rate
    for pos, i in enumerate(open_ix):
        nxt = open_ix[pos + 1] if pos + 1 < len(open_ix) else (won_ix[0] if won_ix else None)
        p_i = stages[i].probability
        p_next = 1.0 if nxt is None or nxt in won_ix else stages[nxt].probability
        # P(win | i) = P(reach next | i) * P(win | next)  =>  q = p_i / p_next, capped at 1.
        q = 0.0 if nxt is None or p_i <= 0 else (1.0 if p_i >= p_next else p_i / p_next)
        prior[i, i] = 1.0 - a
        if nxt is not None:
            prior[i, nxt] += a * q
        # Without a lost stage the non-advancing share simply stays.
        prior[i, lost_ix[0] if lost_ix else i] += a * (1.0 - q)
    if open_ix:
        for i in lost_ix:
            prior[i, i], prior[i, open_ix[0]] = 1.0 - r, r
    return prior


@dataclass(frozen=True, eq=False)
class TransitionEstimate:
    """Observed period-boundary transition counts, the prior and the blended matrix."""

    counts: IntArray  # counts[i, j]: deal in i at t_k and in j at t_{k+1}
    prior: FloatArray
    matrix: FloatArray  # row-stochastic, won rows absorbing
    n_periods: int


def blend(counts: ArrayLike, prior: FloatArray, weight: float, won: BoolArray) -> FloatArray:
    """Posterior-mean rows (counts_i + w * prior_i) / (n_i + w); won rows forced absorbing."""
    c = np.asarray(counts, dtype=np.float64)
    denom = c.sum(axis=1, keepdims=True) + weight
    # Rows with neither data nor prior weight fall back to the prior instead of 0/0.
    safe = np.where(denom > 0, denom, 1.0)
    matrix = np.where(denom > 0, (c + weight * prior) / safe, prior)
    matrix[won] = np.eye(len(won))[won]
    return matrix


def estimate_transitions(
    log: EventLog,
    stages: Sequence[Stage],
    start: datetime,
    end: datetime,
    period: timedelta = DEFAULT_PERIOD,
    prior: PriorConfig = DEFAULT_PRIOR,
) -> TransitionEstimate:
    """Count stage transitions between consecutive period boundaries in [start, end] and blend."""
    n = len(stages)
    if log.to_stage.size and log.to_stage.max() >= n:
        raise ValueError("event references a stage index outside the stage list")
    bounds = period_boundaries(start, end, period)
    at = stages_at(log, bounds)
    src, dst = at[:, :-1].ravel(), at[:, 1:].ravel()
    alive = src >= 0  # a deal that exists at t_k also exists at t_{k+1}
    counts = np.bincount(src[alive] * n + dst[alive], minlength=n * n).reshape(n, n)
    base = prior_matrix(stages, prior)
    matrix = blend(counts, base, prior.weight, kind_mask(stages, StageKind.WON))
    return TransitionEstimate(counts.astype(np.int64), base, matrix, bounds.size - 1)


@dataclass(frozen=True, eq=False)
class Inflow:
    """New deals per period, their entry-stage distribution and average amount."""

    rate: float
    entry: FloatArray  # sums to 1 (or all zeros when no deals were created)
    mean_amount: float

    @property
    def vector(self) -> FloatArray:
        """Expected new deals per stage per period."""
        return self.rate * self.entry


def estimate_inflow(
    log: EventLog,
    n_stages: int,
    start: datetime,
    end: datetime,
    period: timedelta = DEFAULT_PERIOD,
    amounts: ArrayLike | None = None,
) -> Inflow:
    """Creation events in the covered periods [t_0, t_K) divided by K, with entry-stage mix."""
    bounds = period_boundaries(start, end, period)
    k = bounds.size - 1
    m = log.created & (log.time >= bounds[0]) & (log.time < bounds[-1])
    n_new = int(m.sum())
    if k == 0 or n_new == 0:
        return Inflow(0.0, np.zeros(n_stages), 0.0)
    entry = np.bincount(log.to_stage[m], minlength=n_stages).astype(np.float64) / n_new
    mean_amount = 0.0
    if amounts is not None:
        mean_amount = float(np.asarray(amounts, dtype=np.float64)[log.deal[m]].mean())
    return Inflow(n_new / k, entry, mean_amount)
