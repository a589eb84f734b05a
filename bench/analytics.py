"""Funnel analytics and plan-fact query time on the largest tenant.

    python -m bench.analytics [--db saas_bench] [--repeat 3] [--tenant largest|board]

Calls the services the GraphQL fields call (saas/analytics/service.py,
saas/planning/service.py), each in its own unit of work as the application role (RLS on),
on the generated data; each figure is the median of --repeat runs (after one warm-up;
a query slower than --slow seconds runs once, and one slower than --timeout is cancelled
and reported as timed out).
Periods: the last 90 days (conversion, time in stage, outcomes, bottlenecks), the funnel
as of now and a year ago, plan-fact for the current month and week.
Writes bench/results/analytics.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bench.board import tenants
from bench.common import DEFAULT_DB, db_url, settings_for, write_result
from saas.analytics import attention
from saas.analytics import service as analytics
from saas.db import Database, UnitOfWork, create_engine
from saas.planning import service as planning


async def run(*, owner_url: str, repeat: int, which: str, query_timeout: float = 60,
              slow: float = 10) -> dict[str, Any]:
    rows = await tenants(owner_url)
    row = (max(rows, key=lambda r: r["deals"]) if which == "largest"
           else next(r for r in rows if r["kind"] == which))
    db = Database(create_engine(settings_for(owner_url).resolved_app_database_url(),
                                pool_size=2))
    scope = analytics.Scope(pipeline_id=row["pipeline_id"])
    now = datetime.now(UTC)
    start, end = now - timedelta(days=90), now
    today = date.today()
    cases: dict[str, Callable[[UnitOfWork], Awaitable[Any]]] = {
        "funnel_now": lambda uow: analytics.funnel(uow=uow, scope=scope),
        "funnel_year_ago": lambda uow: analytics.funnel(uow=uow, scope=scope,
                                                        as_of=now - timedelta(days=365)),
        "conversion_90d": lambda uow: analytics.conversion(uow=uow, scope=scope, start=start,
                                                           end=end),
        "time_in_stage_90d": lambda uow: analytics.time_in_stage(uow=uow, scope=scope,
                                                                 start=start, end=end),
        "outcomes_90d": lambda uow: analytics.outcomes(uow=uow, scope=scope, start=start,
                                                       end=end),
        "weighted_value": lambda uow: analytics.weighted_value(uow=uow, scope=scope),
        "bottlenecks_90d": lambda uow: attention.bottlenecks(uow=uow, scope=scope,
                                                             start=start, end=end),
        "stale_deals": lambda uow: attention.stale_deals(uow=uow,
                                                         pipeline_id=row["pipeline_id"]),
        "plan_fact_month": lambda uow: planning.compute(uow=uow, kind="month",
                                                        start=today.replace(day=1)),
        "plan_fact_week": lambda uow: planning.compute(
            uow=uow, kind="week", start=today - timedelta(days=today.weekday())),
    }
    figures: dict[str, Any] = {}
    try:
        for name, call in cases.items():
            times: list[float] = []
            for i in range(repeat + 1):
                try:
                    async with db.unit_of_work(row["tenant_id"]) as uow:
                        await uow.session.execute(
                            text(f"SET LOCAL statement_timeout = {int(query_timeout * 1000)}"))
                        t = time.perf_counter()
                        await call(uow)
                        elapsed = time.perf_counter() - t
                except DBAPIError as e:
                    if "statement timeout" not in str(e):
                        raise
                    figures[name] = {"median_ms": None, "timed_out_after_s": query_timeout}
                    break
                if i or elapsed > slow:  # the first run warms caches, unless it is slow
                    times.append(elapsed)
                if elapsed > slow:  # one run is enough to say it is too slow
                    break
            if times:
                figures[name] = {"median_ms": round(statistics.median(times) * 1000, 1),
                                 "runs_ms": [round(x * 1000, 1) for x in times]}
            print(f"{name}: {figures[name]}", flush=True)
    finally:
        await db.dispose()
    return {"tenant": row["slug"], "deals": row["deals"], "events": row["events"],
            "queries": figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tenant", default="largest", choices=["largest", "board", "small"])
    parser.add_argument("--timeout", type=float, default=60, help="seconds per query")
    parser.add_argument("--slow", type=float, default=10, help="seconds: run only once")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = asyncio.run(run(owner_url=db_url(args.db), repeat=args.repeat,
                             which=args.tenant, query_timeout=args.timeout, slow=args.slow))
    write_result("analytics", result, args.out)


if __name__ == "__main__":
    main()
