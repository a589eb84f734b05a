"""Deterministic scale data: tenants, users, teams, pipelines, contacts, deals, stage events.

    python -m bench.generate                      # full scale: 1,000 tenants, 1M deals, ~10M events
    python -m bench.generate --scale 0.1          # 1,000 tenants, 100k deals, ~1M events
    python -m bench.generate --scale 0.001 --tenants 3 --db saas_bench_tiny --fresh

Everything is derived from (--seed, --tenants, --scale, --end): tenant i's rows come from a
generator seeded with (seed, i), so a run can stop and resume (tenants already loaded are
skipped) and a database with only the first N tenants (--limit-tenants, used by the
tenant-count benchmark) holds exactly the same rows for those tenants.

The plan (at --scale 1, 1,000 tenants):
- tenant 0 is the "board" tenant (2,000 deals: a team board of 8 stages x 25 cards);
- the last 0.5% of tenants (5) are large: 10% of all deals each (100k deals, ~1M events);
- the others share the rest, Pareto-skewed (a few hundred deals on average, some tiny).
Each deal has an owner (a rep of the tenant) and a contact. Its history is a random walk on
the default 8-stage template (saas/pipelines/templates.py): forward and backward moves,
losses with a reason, reopenings, won deals moving to Retention (and back), field updates;
older deals have more events (mean 10 per deal). Events lie in the 24 months before --end,
each tenant's `seq` increases with time, the deal's stage is its last event's to_stage,
its version the number of its events, and tenant_counters.event_seq the last seq.

Loading writes as the owner (a superuser bypasses RLS) with COPY
(asyncpg.copy_records_to_table), with foreign-key triggers off for the session
(session_replication_role = replica; the rows are consistent by construction) and, for big
loads, the secondary indexes dropped and recreated afterwards (their definitions are kept
in bench_meta.dropped_indexes until recreated, so an interrupted run repairs them).
bench_meta.tenants records what was generated (benchmarks read it to pick tenants).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import repeat
from typing import Any

import asyncpg
import numpy as np

from bench.common import DEFAULT_DB, dsn, ensure_database, write_result
from saas.demo import history
from saas.demo.history import LOST_REASONS
from saas.pipelines.templates import DEFAULT_SEGMENT, DEFAULT_STAGES

FULL_DEALS = 1_000_000
EVENTS_PER_DEAL = 10.0
HISTORY_DAYS = 730
LARGE_SHARE = 0.10  # of all deals, per large tenant
BOARD_SHARE = 0.002  # tenant 0
LOST = 7
LAYOUT = history.Layout.of([s.kind for s in DEFAULT_STAGES])
META_DDL = """
CREATE SCHEMA IF NOT EXISTS bench_meta;
CREATE TABLE IF NOT EXISTS bench_meta.params (key text PRIMARY KEY, value jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS bench_meta.tenants (
  idx integer PRIMARY KEY, tenant_id uuid NOT NULL, slug text NOT NULL, kind text NOT NULL,
  admin_id uuid NOT NULL, pipeline_id uuid NOT NULL, deals integer NOT NULL,
  events integer NOT NULL);
CREATE TABLE IF NOT EXISTS bench_meta.dropped_indexes (name text PRIMARY KEY, def text NOT NULL);
"""
# Secondary indexes worth dropping around a big load (primary keys and uniques stay).
DROPPABLE = ("deals_board", "deals_owner", "deals_title_trgm", "stage_events_deal",
             "stage_events_pipeline", "stage_events_to_stage", "stage_events_from_stage",
             "stage_events_pipeline_time")
DROP_INDEXES_ABOVE = 500_000  # events still to load


@dataclass(frozen=True)
class TenantPlan:
    idx: int
    kind: str  # board / small / large
    deals: int


def plan(tenants: int, scale: float, seed: int) -> list[TenantPlan]:
    """Deal counts per tenant index: board tenant first, large tenants last."""
    total = max(1, round(FULL_DEALS * scale))
    n_large = round(tenants * 0.005)
    if tenants - n_large < 1:
        n_large = tenants - 1
    rng = np.random.default_rng([seed, 1_000_000])
    board = max(50, round(total * BOARD_SHARE)) if tenants > 1 else total
    rest = max(0, total - n_large * round(total * LARGE_SHARE) - board)
    n_small = tenants - n_large - 1
    out = [TenantPlan(0, "board", board)]
    if n_small > 0:
        weights = rng.pareto(1.3, n_small) + 0.15
        counts = np.maximum(3, np.round(weights / weights.sum() * rest)).astype(int)
        out += [TenantPlan(1 + i, "small", int(c)) for i, c in enumerate(counts)]
    out += [TenantPlan(tenants - n_large + i, "large", max(1, round(total * LARGE_SHARE)))
            for i in range(n_large)]
    return out


def _uuids(rng: np.random.Generator, n: int) -> list[uuid.UUID]:
    raw = rng.bytes(16 * n)
    return [uuid.UUID(bytes=raw[i:i + 16], version=4) for i in range(0, 16 * n, 16)]


@dataclass
class TenantData:
    plan: TenantPlan
    tenant: tuple[Any, ...]
    admin_id: uuid.UUID
    pipeline_id: uuid.UUID
    rows: dict[str, tuple[list[str], Any]]  # table -> (columns, records)
    n_events: int


def simulate(p: TenantPlan, seed: int, end: datetime) -> TenantData:
    """All rows of one tenant, from a generator seeded with (seed, tenant index)."""
    rng = np.random.default_rng([seed, p.idx])
    tenant_id = uuid.UUID(bytes=rng.bytes(16), version=4)
    slug = f"bench-{p.idx:04d}"
    currency = "EUR" if rng.random() < 0.1 else "USD"
    D = p.deals
    end_s = end.timestamp()

    # People: an admin, reps in teams of ~8 (about one rep per 300 deals, 2-300 reps).
    n_reps = int(min(300, max(2, D // 300)))
    n_teams = max(1, n_reps // 8)
    team_ids = _uuids(rng, n_teams)
    user_ids = _uuids(rng, n_reps + 1)
    admin_id = user_ids[0]
    users = [(tenant_id, admin_id, f"admin@{slug}.test", "Admin", "admin", None)]
    for j in range(1, n_reps + 1):
        role = "manager" if j <= n_teams else "rep"
        users.append((tenant_id, user_ids[j], f"rep{j}@{slug}.test", f"Rep {j}", role,
                      team_ids[(j - 1) % n_teams]))
    teams = [(tenant_id, t, f"Team {k + 1}") for k, t in enumerate(team_ids)]

    segment_id, pipeline_id = _uuids(rng, 2)
    stage_ids = _uuids(rng, len(DEFAULT_STAGES))
    stages = [(tenant_id, stage_ids[i], pipeline_id, s.name, i, s.kind, s.probability,
               s.rotting_days) for i, s in enumerate(DEFAULT_STAGES)]

    n_contacts = max(1, D // 2)
    contact_ids = _uuids(rng, n_contacts)
    contacts = [(tenant_id, c, f"Contact {k}", f"contact{k}@{slug}.test")
                for k, c in enumerate(contact_ids)]

    # Deals and their histories: saas/demo/history.py, shared with the demo tenant.
    deal_ids = _uuids(rng, D)
    h = history.simulate(rng, D, end_s=end_s, history_days=HISTORY_DAYS,
                         events_per_deal=EVENTS_PER_DEAL, layout=LAYOUT)
    n_ev, starts, ev_deal, times, E = h.n_ev, h.starts, h.ev_deal, h.times, h.n_events
    to_stage, from_stage, kind, cur, seq = h.to_stage, h.from_stage, h.kind, h.stage, h.seq
    last_ev = starts + n_ev - 1
    entered, last_reason, reason_pick = h.entered, h.last_lost, h.reason
    lost_reason_ev = np.where(kind == 2, reason_pick, -1)

    amounts_int = np.round(rng.lognormal(8.3, 1.0, D) / 10) * 10
    amounts = [Decimal(int(a)) for a in amounts_int]
    other = "EUR" if currency == "USD" else "USD"
    cur_codes = np.where(rng.random(D) < 0.05, other, currency).tolist()
    owner_pick = rng.integers(1, n_reps + 1, D)
    contact_pick = rng.integers(0, n_contacts, D)
    temperature = np.array(["hot", "warm", "cold"], dtype=object)[rng.integers(0, 3, D)]
    labels = [["vip"] if x < 0.1 else [] for x in rng.random(D)]
    close_days = rng.integers(-30, 120, D)

    def dt(seconds: np.ndarray) -> list[datetime]:
        return (seconds * 1e6).astype("int64").astype("datetime64[us]").astype(object).tolist()

    ev_times = dt(times)
    deal_created = [ev_times[i] for i in starts]
    deal_updated = [ev_times[i] for i in last_ev]
    deal_entered = [ev_times[i] for i in entered]
    deals = []
    for d in range(D):
        s = int(cur[d])
        deals.append((
            tenant_id, deal_ids[d], pipeline_id, stage_ids[s], user_ids[owner_pick[d]],
            contact_ids[contact_pick[d]], f"Deal {p.idx}-{d}", amounts[d], cur_codes[d],
            (end + timedelta(days=int(close_days[d]))).date(), temperature[d], labels[d],
            LOST_REASONS[reason_pick[last_reason[d]]] if s == LOST else None,
            int(n_ev[d]), deal_entered[d], deal_created[d], deal_updated[d]))

    stage_obj = np.array([*stage_ids, None], dtype=object)  # -1 -> None
    deal_obj = np.array(deal_ids, dtype=object)
    kinds = np.array(history.KINDS, dtype=object)
    data_json = np.array(["{}", "{}", "{}", "{}", '{"changed": ["amount"]}'], dtype=object)
    reasons = np.array([*LOST_REASONS, None], dtype=object)
    owners = np.array(user_ids, dtype=object)[owner_pick]
    amount_obj = np.array(amounts, dtype=object)
    curr_obj = np.array(cur_codes, dtype=object)
    events = zip(
        repeat(tenant_id, E), seq.tolist(), deal_obj[ev_deal].tolist(), repeat(pipeline_id, E),
        kinds[kind].tolist(), stage_obj[from_stage].tolist(), stage_obj[to_stage].tolist(),
        owners[ev_deal].tolist(), amount_obj[ev_deal].tolist(), curr_obj[ev_deal].tolist(),
        reasons[lost_reason_ev].tolist(), data_json[kind].tolist(), ev_times, strict=True)

    tenant = (tenant_id, slug, f"Bench tenant {p.idx}", currency, "UTC")
    rows: dict[str, tuple[list[str], Any]] = {
        "teams": (["tenant_id", "id", "name"], teams),
        "users": (["tenant_id", "id", "email", "name", "role", "team_id"], users),
        "tenant_counters": (["tenant_id", "event_seq"], [(tenant_id, E)]),
        "segments": (["tenant_id", "id", "name"], [(tenant_id, segment_id, DEFAULT_SEGMENT)]),
        "pipelines": (["tenant_id", "id", "segment_id", "name"],
                      [(tenant_id, pipeline_id, segment_id, DEFAULT_SEGMENT)]),
        "stages": (["tenant_id", "id", "pipeline_id", "name", "position", "kind",
                    "probability", "rotting_days"], stages),
        "contacts": (["tenant_id", "id", "name", "email"], contacts),
        "deals": (["tenant_id", "id", "pipeline_id", "stage_id", "owner_id", "contact_id",
                   "title", "amount", "currency", "expected_close_date", "temperature",
                   "labels", "lost_reason", "version", "stage_entered_at", "created_at",
                   "updated_at"], deals),
        "stage_events": (["tenant_id", "seq", "deal_id", "pipeline_id", "kind",
                          "from_stage_id", "to_stage_id", "actor_user_id", "amount",
                          "currency", "lost_reason", "data", "occurred_at"], events),
    }
    return TenantData(plan=p, tenant=tenant, admin_id=admin_id, pipeline_id=pipeline_id,
                      rows=rows, n_events=E)


async def _load(conn: asyncpg.Connection, t: TenantData) -> None:
    await conn.copy_records_to_table(
        "tenants", records=[t.tenant],
        columns=["id", "slug", "name", "base_currency", "timezone"])
    for table, (columns, records) in t.rows.items():
        await conn.copy_records_to_table(table, records=records, columns=columns)
    await conn.execute(
        "INSERT INTO bench_meta.tenants VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        t.plan.idx, t.tenant[0], t.tenant[1], t.plan.kind, t.admin_id, t.pipeline_id,
        t.plan.deals, t.n_events)


async def _check_params(conn: asyncpg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    """The first run stores its parameters; a resumed run must match them (except limits)."""
    stored = {r["key"]: json.loads(r["value"]) for r in
              await conn.fetch("SELECT key, value FROM bench_meta.params")}
    if not stored:
        for k, v in params.items():
            await conn.execute("INSERT INTO bench_meta.params VALUES ($1, $2)", k, json.dumps(v))
        return params
    for key in ("seed", "tenants", "scale"):
        if stored.get(key) != params[key]:
            raise SystemExit(f"this database was generated with {key}={stored.get(key)!r}, "
                             f"not {params[key]!r}: use another --db or --fresh")
    return stored


async def drop_indexes(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
        "AND indexname = ANY($1::text[])", list(DROPPABLE))
    for r in rows:
        await conn.execute("INSERT INTO bench_meta.dropped_indexes VALUES ($1, $2) "
                           "ON CONFLICT (name) DO NOTHING", r["indexname"], r["indexdef"])
        await conn.execute(f'DROP INDEX "{r["indexname"]}"')
    return [r["indexname"] for r in rows]


async def restore_indexes(conn: asyncpg.Connection) -> float:
    t = time.monotonic()
    await conn.execute("SET maintenance_work_mem = '1GB'")
    await conn.execute("SET max_parallel_maintenance_workers = 2")
    for r in await conn.fetch("SELECT name, def FROM bench_meta.dropped_indexes"):
        exists = await conn.fetchval("SELECT 1 FROM pg_indexes WHERE schemaname = 'public' "
                                     "AND indexname = $1", r["name"])
        if not exists:
            await conn.execute(r["def"])
        await conn.execute("DELETE FROM bench_meta.dropped_indexes WHERE name = $1", r["name"])
    return time.monotonic() - t


async def generate(*, db: str, tenants: int, scale: float, seed: int, end: datetime | None,
                   limit_tenants: int | None = None, fresh: bool = False,
                   server_url: str | None = None, quiet: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    owner_url = await ensure_database(db, server_url, fresh=fresh)
    conn = await asyncpg.connect(dsn(owner_url))
    try:
        for statement in META_DDL.split(";"):
            if statement.strip():
                await conn.execute(statement)
        end = end or datetime.combine(date.today(), datetime.min.time(), UTC)
        params = await _check_params(conn, {"seed": seed, "tenants": tenants, "scale": scale,
                                            "end": end.isoformat()})
        end = datetime.fromisoformat(params["end"])
        todo = plan(tenants, scale, seed)[:limit_tenants]
        done = {r["idx"] for r in await conn.fetch("SELECT idx FROM bench_meta.tenants")}
        todo_left = [p for p in todo if p.idx not in done]
        est_events = sum(p.deals for p in todo_left) * EVENTS_PER_DEAL
        await conn.execute("SET session_replication_role = replica")  # no FK triggers
        await conn.execute("SET synchronous_commit = off")
        dropped: list[str] = []
        if est_events >= DROP_INDEXES_ABOVE:
            dropped = await drop_indexes(conn)
        loaded_deals = loaded_events = 0
        t_load = time.monotonic()
        gen_s = 0.0
        batch_events = 0
        tx = conn.transaction()
        await tx.start()
        for i, p in enumerate(todo_left):
            t = time.monotonic()
            data = simulate(p, seed, end)
            gen_s += time.monotonic() - t
            await _load(conn, data)
            loaded_deals += p.deals
            loaded_events += data.n_events
            batch_events += data.n_events
            if batch_events >= 200_000 or i == len(todo_left) - 1:
                await tx.commit()
                batch_events = 0
                if not quiet:
                    rate = loaded_events / max(time.monotonic() - t_load, 1e-9)
                    print(f"  {i + 1}/{len(todo_left)} tenants, {loaded_deals} deals, "
                          f"{loaded_events} events, {rate:,.0f} events/s", flush=True)
                tx = conn.transaction()
                await tx.start()
        await tx.commit()
        load_s = time.monotonic() - t_load
        pending = await conn.fetchval("SELECT count(*) FROM bench_meta.dropped_indexes")
        index_s = await restore_indexes(conn) if pending else 0.0
        t = time.monotonic()
        if todo_left or pending:
            await conn.execute("VACUUM (ANALYZE)")
        vacuum_s = time.monotonic() - t
        totals = await conn.fetchrow(
            "SELECT count(*) AS tenants, sum(deals) AS deals, sum(events) AS events, "
            "max(deals) AS largest FROM bench_meta.tenants")
    finally:
        await conn.close()
    return {
        "database": db, "seed": seed, "tenants_planned": tenants, "scale": scale,
        "end": end.isoformat(), "limit_tenants": limit_tenants,
        "loaded_now": {"tenants": len(todo_left), "deals": loaded_deals,
                       "events": loaded_events},
        "in_database": {k: int(totals[k] or 0) for k in ("tenants", "deals", "events",
                                                          "largest")},
        "seconds": {"total": round(time.monotonic() - started, 2),
                    "generate_python": round(gen_s, 2), "load_incl_generate": round(load_s, 2),
                    "indexes": round(index_s, 2), "vacuum_analyze": round(vacuum_s, 2)},
        "events_per_second": round(loaded_events / load_s) if load_s and loaded_events else None,
        "dropped_indexes": dropped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=DEFAULT_DB, help="database name (created if missing)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 1M deals/10M events")
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--limit-tenants", type=int, default=None,
                        help="load only the first N tenants of the plan")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--end", default=None, help="end of the history (ISO date, UTC); "
                        "default today 00:00 UTC, fixed at the first run")
    parser.add_argument("--fresh", action="store_true", help="drop and recreate the database")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    end = datetime.fromisoformat(args.end).replace(tzinfo=UTC) if args.end else None
    result = asyncio.run(generate(db=args.db, tenants=args.tenants, scale=args.scale,
                                  seed=args.seed, end=end, limit_tenants=args.limit_tenants,
                                  fresh=args.fresh))
    write_result("generate", result, args.out)


if __name__ == "__main__":
    main()
