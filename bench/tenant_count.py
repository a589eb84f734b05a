"""Tenant-count independence: the same board with 10 tenants of data vs all 1,000.

    python -m bench.tenant_count [--db saas_bench] [--small-db saas_bench_t10] [--seconds 10]

--db must be a generated database; --small-db is generated here (if missing) with the same
seed/tenants/scale but only the first 10 tenants of the plan (so the board tenant's rows are
identical in both). For each database a fresh `saas serve` process serves the board
tenant's board; latency is measured with one connection (wrk -c1, or httpx), throughput with
16. The ratio is large/small of the median latency (target <= 1.1). Each database is measured
twice: as served (the board response cache on) and with BOARD_CACHE_ENTRIES=0, so that the
board query itself is compared too (the `uncached_` figures).
Writes bench/results/tenant_count.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import Any

import asyncpg

from bench.board import board_target, fetch, load
from bench.common import DEFAULT_DB, api_server, db_url, dsn, write_result
from bench.generate import generate


async def _params(owner_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn(owner_url))
    try:
        return {r["key"]: json.loads(r["value"])
                for r in await conn.fetch("SELECT key, value FROM bench_meta.params")}
    finally:
        await conn.close()


async def measure(owner_url: str, seconds: float, warmup: float,
                  max_requests: int | None, *, cache: bool = True) -> dict[str, Any]:
    target = await board_target(owner_url)
    conn = await asyncpg.connect(dsn(owner_url))
    try:
        totals = await conn.fetchrow("SELECT count(*) AS tenants, sum(deals) AS deals, "
                                     "sum(events) AS events FROM bench_meta.tenants")
    finally:
        await conn.close()
    env = {} if cache else {"BOARD_CACHE_ENTRIES": "0"}
    with api_server(owner_url, name="tenant-count-api", **env) as server:
        body = await fetch(server.http, target)
        cards = sum(len(c["deals"]) for c in body["data"]["board"]["columns"])
        one = await load(server, target, seconds=seconds, connections=1, warmup=warmup,
                         max_requests=max_requests)
        many = await load(server, target, seconds=seconds, connections=16, warmup=0,
                          max_requests=max_requests)
    return {"tenants": totals["tenants"], "deals": int(totals["deals"]),
            "events": int(totals["events"]), "board_cards": cards,
            "one_connection": one, "sixteen_connections": many}


async def run(*, big_db: str, small_db: str, seconds: float, warmup: float,
              max_requests: int | None = None) -> dict[str, Any]:
    big_url = db_url(big_db)
    params = await _params(big_url)
    await generate(db=small_db, tenants=params["tenants"], scale=params["scale"],
                   seed=params["seed"], end=datetime.fromisoformat(params["end"]),
                   limit_tenants=10, quiet=True)
    # With the response cache (what clients get) and without it (the board query itself).
    out: dict[str, Any] = {}
    for label, cache in (("", True), ("uncached_", False)):
        small = await measure(db_url(small_db), seconds, warmup, max_requests, cache=cache)
        print(f"{label}small: {small['one_connection']['latency_ms']}", file=sys.stderr)
        big = await measure(big_url, seconds, warmup, max_requests, cache=cache)
        print(f"{label}big: {big['one_connection']['latency_ms']}", file=sys.stderr)
        p50 = (big["one_connection"]["latency_ms"]["p50"]
               / small["one_connection"]["latency_ms"]["p50"])
        rps = small["sixteen_connections"]["rps"] / big["sixteen_connections"]["rps"]
        out.update({f"{label}small": small, f"{label}big": big,
                    f"{label}ratio_latency_p50_big_to_small": round(p50, 3),
                    f"{label}ratio_throughput_small_to_big": round(rps, 3)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--small-db", default=DEFAULT_DB + "_t10")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = asyncio.run(run(big_db=args.db, small_db=args.small_db, seconds=args.seconds,
                             warmup=args.warmup))
    write_result("tenant_count", result, args.out)


if __name__ == "__main__":
    main()
