"""Forecast job time: the largest tenant, and every tenant one after another (one worker).

    python -m bench.forecast [--db saas_bench] [--horizon 3] [--all/--no-all] [--limit N]

Runs the job's own path, `saas.forecasting.service.run` (mark running, load the pipeline's
events and open deals under the tenant's RLS, compute off the event loop, store the result),
as the application role on the generated data, after creating the queued forecast records
directly (no Redis queue involved). For the largest tenant it also times the steps: load
events and load open deals one at a time, both concurrently on two connections (as the job
does), and compute; each figure is the median of --repeat runs. Writes
bench/results/forecast.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from bench.board import tenants
from bench.common import DEFAULT_DB, db_url, settings_for, write_result
from saas.db import Database, create_engine
from saas.forecasting import data as loading
from saas.forecasting import service
from saas.forecasting.compute import forecast


async def _queued(db: Database, tenant_id: uuid.UUID, pipeline_id: uuid.UUID,
                  horizon: int) -> uuid.UUID:
    forecast_id = uuid.uuid4()
    async with db.unit_of_work(tenant_id) as uow:
        await uow.session.execute(text(
            "INSERT INTO forecasts (tenant_id, id, pipeline_id, horizon_months, request_key, "
            "origin) VALUES (:t, :id, :p, :h, :k, 'nightly')"),
            {"t": tenant_id, "id": forecast_id, "p": pipeline_id, "h": horizon,
             "k": f"bench:{forecast_id}"})
    return forecast_id


async def one(db: Database, row: dict[str, Any], horizon: int) -> float:
    forecast_id = await _queued(db, row["tenant_id"], row["pipeline_id"], horizon)
    t = time.perf_counter()
    status = await service.run(db=db, tenant_id=row["tenant_id"], forecast_id=forecast_id)
    elapsed = time.perf_counter() - t
    if status != "done":
        raise RuntimeError(f"forecast for {row['slug']} ended {status}")
    return elapsed


async def steps(db: Database, row: dict[str, Any], horizon: int) -> dict[str, float]:
    """The job's loads one at a time, then together as the job runs them, then compute."""
    now = datetime.now(UTC)
    tenant_id, pipeline_id = row["tenant_id"], row["pipeline_id"]
    out = {}
    async with db.unit_of_work(tenant_id) as uow:
        stages = await loading.load_stages(uow, pipeline_id)
    async with db.unit_of_work(tenant_id) as uow:
        t = time.perf_counter()
        await loading.load_pipeline(uow, pipeline_id, now, stages=stages)
        out["load_events_s"] = time.perf_counter() - t
    async with db.unit_of_work(tenant_id) as uow:
        t = time.perf_counter()
        await loading.load_open_deals(uow, pipeline_id, stages.ids, None, None)
        out["load_deals_s"] = time.perf_counter() - t
    t = time.perf_counter()
    loaded, deals = await service.load(db=db, tenant_id=tenant_id, pipeline_id=pipeline_id,
                                       as_of=now, owner_id=None, team_id=None)
    out["load_concurrently_s"] = time.perf_counter() - t
    t = time.perf_counter()
    forecast(loaded, deals, horizon=horizon, as_of=now, include_inflow=True)
    out["compute_s"] = time.perf_counter() - t
    out["events"] = int(loaded.log.deal.size)
    out["deals"] = deals.size
    return out


async def run(*, owner_url: str, horizon: int, repeat: int, all_tenants: bool,
              limit: int | None) -> dict[str, Any]:
    rows = await tenants(owner_url)
    largest = max(rows, key=lambda r: r["deals"])
    db = Database(create_engine(settings_for(owner_url).resolved_app_database_url(),
                                pool_size=2))
    try:
        times = [await one(db, largest, horizon) for _ in range(repeat)]
        parts = [await steps(db, largest, horizon) for _ in range(repeat)]
        result: dict[str, Any] = {
            "horizon_months": horizon,
            "largest_tenant": {
                "slug": largest["slug"], "deals": largest["deals"],
                "events": largest["events"], "runs": [round(x, 3) for x in times],
                "median_s": round(statistics.median(times), 3),
                "steps_median_s": {k: round(statistics.median(p[k] for p in parts), 3)
                                   for k in ("load_events_s", "load_deals_s",
                                             "load_concurrently_s", "compute_s")},
                "events_used": parts[0]["events"], "deals_loaded": parts[0]["deals"],
            },
        }
        if all_tenants:
            chosen = rows[:limit] if limit else rows
            t = time.perf_counter()
            per = [await one(db, r, horizon) for r in chosen]
            total = time.perf_counter() - t
            result["all_tenants"] = {
                "tenants": len(chosen), "deals": sum(r["deals"] for r in chosen),
                "events": sum(r["events"] for r in chosen),
                "total_s": round(total, 2),
                "per_tenant_median_s": round(statistics.median(per), 4),
                "per_tenant_max_s": round(max(per), 3),
            }
    finally:
        await db.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--horizon", type=int, default=3, help="months (the nightly uses 3)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--all", dest="all_tenants", action=argparse.BooleanOptionalAction,
                        default=True)
    parser.add_argument("--limit", type=int, default=None, help="only the first N tenants")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = asyncio.run(run(owner_url=db_url(args.db), horizon=args.horizon,
                             repeat=args.repeat, all_tenants=args.all_tenants,
                             limit=args.limit))
    write_result("forecast", result, args.out)


if __name__ == "__main__":
    main()
