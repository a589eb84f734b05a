"""The forecast's loaders and summary against a straightforward reference, on real PostgreSQL.

A generated pipeline with the awkward cases (ties in time, seq out of time order, 'updated'
events, events naming another pipeline's stages, future events, transfers, deals that left,
owners without a team, deals without an owner, padded and non-ASCII currencies) is written
for one tenant; a second tenant gets a copy of it under the same pipeline and stage ids, so
that reading it would show. The loaders run as the application role in the tenant's unit
of work (RLS on). The reference reads plain rows ordered by (deal_id, seq), numbers the deals
in Python, and summarises the forecast with per-deal Python loops.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from saas.db import Database
from saas.forecasting import data as loading
from saas.forecasting import service
from saas.forecasting.compute import BAND, LOOKBACK_PERIODS, _band, forecast
from saas.forecasting.model import (
    DEFAULT_PERIOD,
    DEFAULT_PRIOR,
    EventLog,
    Stage,
    StageKind,
    estimate_inflow,
    estimate_transitions,
    kind_mask,
)
from saas.forecasting.planning import CurrentDeals, project
from tests.factories import TenantFactory

AS_OF = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
STAGES = [("Lead", "open", 0.1), ("Qualified", "open", 0.3), ("Proposal", "open", 0.6),
          ("Won", "won", 1.0), ("Lost", "lost", 0.0), ("Parked", "open", 0.2)]
CURRENCIES = ["USD", "EUR", "ab", "ñé€"]  # 'ab' is stored padded: 'ab '


@dataclass
class Pipeline:
    id: uuid.UUID
    stage_ids: list[uuid.UUID]
    other_stage_ids: list[uuid.UUID]
    owners: list[uuid.UUID]
    teams: list[uuid.UUID]
    n_deals_in_pipeline: int


async def _insert(session: Any, table: str, columns: dict[str, tuple[str, list[Any]]]) -> None:
    """One INSERT of parallel lists: `{column: (sql type, values)}`."""
    names = ", ".join(columns)
    arrays = ", ".join(f"CAST(:c{i} AS {kind}[])" for i, (kind, _) in enumerate(columns.values()))
    await session.execute(text(f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays})"),
                          {f"c{i}": v for i, (_, v) in enumerate(columns.values())})


async def _generate(db: Database, tenant_id: uuid.UUID, seed: int,
                    ids: Pipeline | None = None) -> Pipeline:
    """Write the test pipeline for a tenant (with the given ids, if any)."""
    rng = np.random.default_rng(seed)
    new = lambda n: [uuid.uuid4() for _ in range(n)]  # noqa: E731
    pipeline_id, other_id = (ids.id, uuid.uuid4()) if ids else (uuid.uuid4(), uuid.uuid4())
    stage_ids = ids.stage_ids if ids else new(len(STAGES))
    other_stage_ids = ids.other_stage_ids if ids else new(2)
    async with db.unit_of_work(tenant_id) as uow:
        s = uow.session
        teams = new(3)
        for k, team in enumerate(teams):
            await s.execute(text("INSERT INTO teams (tenant_id, id, name) VALUES (:t, :i, :n)"),
                            {"t": tenant_id, "i": team, "n": f"forecast team {k}"})
        owners = new(7)
        for k, owner in enumerate(owners):
            await s.execute(text(
                "INSERT INTO users (tenant_id, id, email, name, role, team_id) "
                "VALUES (:t, :i, :e, :n, 'rep', :team)"),
                {"t": tenant_id, "i": owner, "e": f"o{k}-{owner.hex[:6]}@x.test", "n": f"o{k}",
                 "team": teams[k % 3] if k < 5 else None})
        for pid, name in ((pipeline_id, "forecast"), (other_id, "other")):
            segment = uuid.uuid4()
            await s.execute(text("INSERT INTO segments (tenant_id, id, name) VALUES (:t, :i, :n)"),
                            {"t": tenant_id, "i": segment, "n": f"{name}-{segment.hex[:6]}"})
            await s.execute(text("INSERT INTO pipelines (tenant_id, id, segment_id, name) "
                                 "VALUES (:t, :i, :s, :n)"),
                            {"t": tenant_id, "i": pid, "s": segment, "n": name})
        stage_rows = [(sid, pipeline_id, n, k, kind, p, None if n != "Parked" else AS_OF)
                      for k, (sid, (n, kind, p)) in enumerate(zip(stage_ids, STAGES, strict=True))]
        stage_rows += [(other_stage_ids[0], other_id, "Other open", 0, "open", 0.5, None),
                       (other_stage_ids[1], other_id, "Other won", 1, "won", 1.0, None)]
        for sid, pid, n, k, kind, p, archived in stage_rows:
            await s.execute(text(
                "INSERT INTO stages (tenant_id, id, pipeline_id, name, position, kind, "
                "probability, archived_at) VALUES (:t, :i, :p, :n, :k, :kind, :prob, :a)"),
                {"t": tenant_id, "i": sid, "p": pid, "n": n, "k": k, "kind": kind, "prob": p,
                 "a": archived})

        n_deals = 400
        deal_ids = new(n_deals)
        # A quarter of the deals moved over from the other pipeline; a tenth left for it.
        came = rng.random(n_deals) < 0.25
        left = rng.random(n_deals) < 0.1
        stage_now = rng.integers(0, len(STAGES), n_deals)
        owner_pick = rng.integers(-1, len(owners), n_deals)  # -1: no owner
        amounts = np.round(rng.lognormal(7, 1.2, n_deals), 2)
        currency = rng.choice(len(CURRENCIES), n_deals, p=[0.6, 0.25, 0.1, 0.05])
        await _insert(s, "deals", {
            "tenant_id": ("uuid", [tenant_id] * n_deals), "id": ("uuid", deal_ids),
            "pipeline_id": ("uuid", [other_id if g else pipeline_id for g in left]),
            "stage_id": ("uuid", [other_stage_ids[0] if g else stage_ids[k]
                                  for g, k in zip(left, stage_now, strict=True)]),
            "owner_id": ("uuid", [owners[k] if k >= 0 else None for k in owner_pick]),
            "title": ("text", [f"deal {i}" for i in range(n_deals)]),
            "amount": ("numeric", [str(a) for a in amounts]),
            "currency": ("text", [CURRENCIES[k] for k in currency]),
        })

        ev: dict[str, list[Any]] = defaultdict(list)
        start = (AS_OF - timedelta(days=480)).timestamp()
        for d, deal in enumerate(deal_ids):
            n = int(rng.integers(1, 16))
            # Whole seconds half the time, so that several events of a deal share an instant.
            t = np.sort(start + rng.uniform(0, 500 * 86400, n))
            t = np.where(rng.random(n) < 0.5, np.floor(t / 86400) * 86400, t)
            t = np.sort(t)
            if d == 0:
                t[0] = datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC).timestamp()
            kinds = ["created", *rng.choice(["moved", "moved", "lost", "reopened", "updated"],
                                            n - 1)]
            to = rng.integers(0, len(STAGES), n)
            for k in range(n):
                pid, kind, to_stage = pipeline_id, kinds[k], stage_ids[to[k]]
                if came[d] and k == 0:
                    pid, to_stage = other_id, other_stage_ids[0]
                elif came[d] and k == 1:
                    kind = "transferred"
                if kind == "updated" and rng.random() < 0.5:
                    to_stage = None
                if rng.random() < 0.03:  # an older event naming another pipeline's stage
                    to_stage = other_stage_ids[1]
                ev["deal_id"].append(deal)
                ev["pipeline_id"].append(pid)
                ev["kind"].append(kind)
                ev["to_stage_id"].append(to_stage)
                ev["amount"].append(str(amounts[d]))
                ev["currency"].append(CURRENCIES[currency[d]])
                ev["occurred_at"].append(datetime.fromtimestamp(float(t[k]), UTC))
        n_ev = len(ev["deal_id"])
        # seq mostly follows time, but not always (events written late or with a back date).
        order = np.argsort(np.array([x.timestamp() for x in ev["occurred_at"]])
                           + rng.normal(0, 86400 * 3, n_ev), kind="stable")
        seq = np.empty(n_ev, dtype=np.int64)
        seq[order] = np.arange(1, n_ev + 1)
        await _insert(s, "stage_events", {
            "tenant_id": ("uuid", [tenant_id] * n_ev), "seq": ("bigint", seq.tolist()),
            "deal_id": ("uuid", ev["deal_id"]), "pipeline_id": ("uuid", ev["pipeline_id"]),
            "kind": ("text", ev["kind"]), "to_stage_id": ("uuid", ev["to_stage_id"]),
            "amount": ("numeric", ev["amount"]), "currency": ("text", ev["currency"]),
            "occurred_at": ("timestamptz", ev["occurred_at"]),
        })
    return Pipeline(pipeline_id, stage_ids, other_stage_ids, owners, teams,
                    int((~left).sum()))


@dataclass
class Reference:
    stage_ids: list[uuid.UUID]
    stages: list[Stage]
    deal_ids: list[uuid.UUID]
    log: EventLog
    amounts: np.ndarray
    deals: list[tuple[int, float, str, uuid.UUID | None, uuid.UUID | None]]


async def _reference(db: Database, tenant_id: uuid.UUID, pipeline_id: uuid.UUID,
                     owner_id: uuid.UUID | None = None,
                     team_id: uuid.UUID | None = None) -> Reference:
    async with db.unit_of_work(tenant_id) as uow:
        s = uow.session
        stage_rows = (await s.execute(text(
            "SELECT id, name, kind, probability FROM stages WHERE pipeline_id = :p "
            "ORDER BY archived_at IS NOT NULL, position, id"), {"p": pipeline_id})).all()
        stage_ids = [r.id for r in stage_rows]
        index = {sid: i for i, sid in enumerate(stage_ids)}
        events = (await s.execute(text(
            "SELECT deal_id, extract(epoch FROM occurred_at)::float8 AS at, to_stage_id, kind "
            "FROM stage_events WHERE pipeline_id = :p AND kind <> 'updated' AND occurred_at < :a "
            "ORDER BY deal_id, seq"), {"p": pipeline_id, "a": AS_OF})).all()
        events = [e for e in events if e.to_stage_id in index]
        deal_ids = sorted({e.deal_id for e in events})
        number = {d: i for i, d in enumerate(deal_ids)}
        amount_of = {r.id: r.amount for r in (await s.execute(text(
            "SELECT id, amount::float8 AS amount FROM deals"))).all()}
        deals = (await s.execute(text(
            "SELECT d.id, d.stage_id, d.amount::float8 AS amount, d.currency, d.owner_id, "
            "u.team_id FROM deals d LEFT JOIN users u ON u.id = d.owner_id "
            "WHERE d.pipeline_id = :p ORDER BY d.id"), {"p": pipeline_id})).all()
    deals = [d for d in deals if (owner_id is None or d.owner_id == owner_id)
             and (team_id is None or d.team_id == team_id)]
    return Reference(
        stage_ids=stage_ids,
        stages=[Stage(r.name, StageKind[r.kind.upper()], float(r.probability))
                for r in stage_rows],
        deal_ids=deal_ids,
        log=EventLog.from_arrays(
            [number[e.deal_id] for e in events], [e.at for e in events],
            [index[e.to_stage_id] for e in events],
            created=[e.kind in ("created", "transferred") for e in events],
            n_deals=len(deal_ids)),
        amounts=np.array([amount_of[d] for d in deal_ids]),
        deals=[(index[d.stage_id], d.amount, d.currency, d.owner_id, d.team_id) for d in deals],
    )


def _reference_forecast(ref: Reference, horizon: int, include_inflow: bool) -> dict[str, Any]:
    """The forecast summary written out deal by deal (the loops the job used to run)."""
    period = DEFAULT_PERIOD
    start = AS_OF - LOOKBACK_PERIODS * period
    estimate = estimate_transitions(ref.log, ref.stages, start, AS_OF, period, DEFAULT_PRIOR)
    won = kind_mask(ref.stages, StageKind.WON)
    open_deals = [d for d in ref.deals if not won[d[0]]]
    current = CurrentDeals.build(np.array([d[0] for d in open_deals], dtype=np.int64),
                                 np.array([d[1] for d in open_deals], dtype=np.float64))
    inflow = estimate_inflow(ref.log, len(ref.stages), start, AS_OF, period,
                             amounts=ref.amounts) if include_inflow else None
    projection = project(estimate.matrix, ref.stages, current, horizon, inflow=inflow, band=BAND)
    p = projection.deal_won
    amount = current.amount
    currency = np.array([d[2] for d in open_deals])
    horizons = []
    for h in range(1, horizon + 1):
        ph = p[:, h]
        by_currency = []
        for code in sorted({d[2] for d in open_deals}):
            m = currency == code
            mean = float((amount[m] * ph[m]).sum())
            low, high = _band(mean, float((amount[m] ** 2 * ph[m] * (1 - ph[m])).sum()))
            by_currency.append({"currency": code, "amount": mean, "low": low, "high": high})
        count = float(ph.sum())
        low, high = _band(count, float((ph * (1 - ph)).sum()))
        horizons.append({
            "horizon": h,
            "occupancy": {str(sid): float(x) for sid, x in
                          zip(ref.stage_ids, projection.occupancy[h], strict=True)},
            "expectedWonCount": count, "wonCountLow": low, "wonCountHigh": high,
            "expectedWonAmount": by_currency,
            "newDealsWonCount": float(projection.total.count[h] - projection.pipeline.count[h]),
        })
    per_owner: dict[tuple[str | None, str | None], dict[str, Any]] = {}
    for i, (_, _, code, owner, team) in enumerate(open_deals):
        key = (str(owner) if owner else None, str(team) if team else None)
        entry = per_owner.setdefault(key, {"count": [0.0] * horizon,
                                           "amounts": defaultdict(lambda: [0.0] * horizon)})
        for h in range(1, horizon + 1):
            entry["count"][h - 1] += float(p[i, h])
            entry["amounts"][code][h - 1] += float(amount[i] * p[i, h])
    return {
        "asOf": AS_OF.isoformat(),
        "periodDays": period / timedelta(days=1),
        "lookbackPeriods": LOOKBACK_PERIODS,
        "priorWeight": DEFAULT_PRIOR.weight,
        "eventsUsed": int(ref.log.deal.size),
        "transitionsObserved": int(estimate.counts.sum()),
        "openDeals": len(open_deals),
        "stages": [{"id": str(sid), "name": s.key, "kind": s.kind.name.lower()}
                   for sid, s in zip(ref.stage_ids, ref.stages, strict=True)],
        "matrix": estimate.matrix.round(6).tolist(),
        "inflowPerPeriod": float(inflow.rate) if inflow else 0.0,
        "horizons": horizons,
        "byOwner": [{"ownerId": k[0], "teamId": k[1], "expectedWonCount": e["count"],
                     "expectedWonAmount": [{"currency": c, "amounts": v}
                                           for c, v in sorted(e["amounts"].items())]}
                    for k, e in per_owner.items()],
    }


@pytest.fixture
async def pipeline(db: Database, tenants: TenantFactory) -> tuple[uuid.UUID, Pipeline]:
    mine, theirs = await tenants.create(), await tenants.create()
    generated = await _generate(db, mine.id, seed=7)
    # The other tenant: different rows under the very same pipeline and stage ids.
    await _generate(db, theirs.id, seed=8, ids=generated)
    return mine.id, generated


async def test_loaders_match_the_reference_rows_under_rls(
    db: Database, pipeline: tuple[uuid.UUID, Pipeline],
) -> None:
    tenant_id, generated = pipeline
    ref = await _reference(db, tenant_id, generated.id)
    loaded, deals = await service.load(db=db, tenant_id=tenant_id, pipeline_id=generated.id,
                                       as_of=AS_OF, owner_id=None, team_id=None)
    async with db.unit_of_work(tenant_id) as uow:
        with_amounts = await loading.load_pipeline(uow, generated.id, AS_OF, with_amounts=True)

    assert ref.log.deal.size > 1500 and len(ref.deal_ids) > 300  # a non-trivial log
    assert (loaded.stage_ids, loaded.stages) == (ref.stage_ids, ref.stages)
    assert loaded.deal_ids == ref.deal_ids
    for field in ("deal", "time", "to_stage", "created"):
        assert np.array_equal(getattr(loaded.log, field), getattr(ref.log, field)), field
        assert getattr(loaded.log, field).dtype == getattr(ref.log, field).dtype
    assert loaded.log.n_deals == ref.log.n_deals
    assert loaded.amounts is None
    assert np.array_equal(with_amounts.amounts, ref.amounts)
    assert np.array_equal(with_amounts.log.time, ref.log.time)

    # Only this tenant's deals, all of them, in id order, with their currency and owner.
    assert deals.size == len(ref.deals) == generated.n_deals_in_pipeline
    got = [(int(deals.stage[i]), float(deals.amount[i]),
            deals.currencies[deals.currency[i]], *deals.owners[deals.owner[i]])
           for i in range(deals.size)]
    assert got == ref.deals
    assert {c for _, _, c, _, _ in got} == {"USD", "EUR", "ab ", "ñé€"}
    assert any(o is None for *_, o, _ in got) and any(o and t is None for *_, o, t in got)


async def test_forecast_equals_the_reference_summary(
    db: Database, pipeline: tuple[uuid.UUID, Pipeline],
) -> None:
    tenant_id, generated = pipeline
    ref = await _reference(db, tenant_id, generated.id)
    loaded, deals = await service.load(db=db, tenant_id=tenant_id, pipeline_id=generated.id,
                                       as_of=AS_OF, owner_id=None, team_id=None)
    for horizon, inflow in ((3, True), (12, False)):
        result = forecast(loaded, deals, horizon=horizon, as_of=AS_OF, include_inflow=inflow)
        expected = _reference_forecast(ref, horizon, inflow)
        assert result == expected  # exactly: same floats, same order
        assert len(result["byOwner"]) == 8 and (result["inflowPerPeriod"] > 0) == inflow

    # One owner's and one team's deals.
    owner, team = generated.owners[0], generated.teams[1]
    for owner_id, team_id in ((owner, None), (None, team)):
        ref_part = await _reference(db, tenant_id, generated.id, owner_id, team_id)
        loaded, deals = await service.load(db=db, tenant_id=tenant_id, pipeline_id=generated.id,
                                           as_of=AS_OF, owner_id=owner_id, team_id=team_id)
        assert 0 < deals.size < generated.n_deals_in_pipeline
        assert forecast(loaded, deals, horizon=2, as_of=AS_OF, include_inflow=False) == \
            _reference_forecast(ref_part, 2, False)


async def test_an_empty_pipeline_and_a_null_field(
    db: Database, tenants: TenantFactory,
) -> None:
    t = await tenants.create()
    async with db.unit_of_work(t.id) as uow:
        pipeline_id = (await uow.session.execute(text("SELECT id FROM pipelines"))).scalar_one()
    loaded, deals = await service.load(db=db, tenant_id=t.id, pipeline_id=pipeline_id,
                                       as_of=AS_OF, owner_id=None, team_id=None)
    assert loaded.log.deal.size == 0 and loaded.deal_ids == [] and deals.size == 0
    result = forecast(loaded, deals, horizon=2, as_of=AS_OF, include_inflow=True)
    assert result["openDeals"] == 0 and result["byOwner"] == []

    async with db.unit_of_work(t.id) as uow:
        buf = await loading._copy(uow, "SELECT 1::int2, NULL::float8")
    with pytest.raises(ValueError, match="NULL"):
        loading._fixed_rows(buf, [("a", ">i2"), ("b", ">f8")])
