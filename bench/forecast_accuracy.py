"""The flow model against the weighted-pipeline baseline over the bench data's tenants.

    python -m bench.forecast_accuracy [--db saas_bench] [--horizon 3] [--windows 3] [--limit N]

For every tenant's pipeline, backtests at the last `--windows` month boundaries that leave
`--horizon` months to score (as of now - (horizon + k) months, k = 0..windows-1), through
the service forecastAccuracy calls (saas/forecasting/service.py `accuracy`), and sums per
month the absolute error of the model's and of the baseline's won count and won amount
(Σ amount x stage probability by expected close month). Amounts of all currencies are
added as numbers (the bench data is one currency per tenant). Writes
bench/results/forecast_accuracy.json.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from bench.board import tenants
from bench.common import DEFAULT_DB, db_url, settings_for, write_result
from saas.db import Database, create_engine
from saas.forecasting import service
from saas.forecasting.model import DEFAULT_PERIOD


async def run(*, owner_url: str, horizon: int, windows: int, limit: int | None
              ) -> dict[str, Any]:
    rows = await tenants(owner_url)
    chosen = rows[:limit] if limit else rows
    db = Database(create_engine(settings_for(owner_url).resolved_app_database_url(),
                                pool_size=2))
    keys = ("model_count_error", "baseline_count_error", "model_amount_error",
            "baseline_amount_error")
    totals = dict.fromkeys(keys, 0.0)
    per_tenant = []
    won = 0.0
    started = time.perf_counter()
    now = datetime.now(UTC)
    try:
        for row in chosen:
            mine = dict.fromkeys(keys, 0.0)
            for k in range(windows):
                as_of = now - (horizon + k) * DEFAULT_PERIOD
                async with db.unit_of_work(row["tenant_id"]) as uow:
                    r = await service.accuracy(uow=uow, pipeline_id=row["pipeline_id"],
                                               as_of=as_of, horizon=horizon)
                for key in keys:
                    mine[key] += sum(r["monthly"][key])
                won += sum(r["monthly"]["actualWonCount"])
            for key in keys:
                totals[key] += mine[key]
            per_tenant.append({"slug": row["slug"], **{k: round(v, 2) for k, v in mine.items()}})
    finally:
        await db.dispose()
    better = sum(1 for t in per_tenant if t["model_count_error"] < t["baseline_count_error"])
    return {
        "horizon_months": horizon, "windows": windows, "tenants": len(chosen),
        "actual_won_deals_scored": round(won, 1),
        "total_abs_error": {k: round(v, 2) for k, v in totals.items()},
        "count_error_ratio_model_to_baseline": round(
            totals["model_count_error"] / totals["baseline_count_error"], 3)
        if totals["baseline_count_error"] else None,
        "amount_error_ratio_model_to_baseline": round(
            totals["model_amount_error"] / totals["baseline_amount_error"], 3)
        if totals["baseline_amount_error"] else None,
        "tenants_where_model_count_error_is_lower": better,
        "elapsed_s": round(time.perf_counter() - started, 1),
        "per_tenant": per_tenant,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--horizon", type=int, default=3)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = asyncio.run(run(owner_url=db_url(args.db), horizon=args.horizon,
                             windows=args.windows, limit=args.limit))
    write_result("forecast_accuracy", result, args.out)


if __name__ == "__main__":
    main()
