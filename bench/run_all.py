"""Run every benchmark in order and summarise the figures against BENCHMARKS.md's targets.

    bench/setup.sh                        # once: wrk (apt) if missing, the venv's packages
    python -m bench.run_all               # full scale (generates saas_bench if needed)
    python -m bench.run_all --scale 0.1   # smaller data set, same procedure
    python -m bench.run_all --quick       # shorter runs (figures are noisier)

Each benchmark prints its figures and writes bench/results/<name>.json; the summary (one
row per BENCHMARKS.md figure, with the target and whether it was met) goes to
bench/results/summary.json. Settings: BENCH_PG_URL, BENCH_REDIS_URL (bench/common.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import analytics, board, cold_reads, forecast, live, live_latency, tenant_count
from bench.common import DEFAULT_DB, RESULTS, db_url, write_result
from bench.generate import generate


@dataclass
class Config:
    db: str = DEFAULT_DB
    scale: float = 1.0
    tenants: int = 1000
    seed: int = 42
    board_seconds: float = 15
    warmup: float = 3
    connections: int = 16
    writer_rate: float = 10
    max_requests: int | None = None  # cap per load run (smoke test)
    live_subscribers: list[int] = field(default_factory=lambda: [100, 1000, 5000])
    live_rate: float = 2
    live_moves: int = 60
    idle_steps: list[int] = field(default_factory=lambda: [1000, 2500, 5000, 10000])
    mutation_connections: int = 16
    mutation_subscribers: int = 100
    mutation_seconds: float = 15
    forecast_repeat: int = 3
    analytics_repeat: int = 3
    cold_rounds: int = 3
    cold_boards: int = 50
    results: Path = RESULTS
    only: set[str] | None = None


def _met(value: float | None, target: float, higher_is_better: bool) -> bool | None:
    if value is None:
        return None
    return value >= target if higher_is_better else value <= target


def summarise(r: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(figure: str, value: Any, target: str, met: bool | None) -> None:
        rows.append({"figure": figure, "value": value, "target": target, "met": met})

    if "board" in r:
        b = r["board"]
        g = b["runs"]["graphql"]
        add("board GraphQL / raw floor (reads)", b["ratio_graphql_to_floor"], ">= 1.0",
            _met(b["ratio_graphql_to_floor"], 1.0, True))
        add("board GraphQL req/s | floor req/s", f"{g['rps']} | {b['runs']['floor']['rps']}",
            "-", None)
        add("board GraphQL p99 ms (reads)", g["latency_ms"]["p99"], "<= 20",
            _met(g["latency_ms"]["p99"], 20, False))
        add("board GraphQL with writer / raw floor", b["ratio_graphql_with_writer_to_floor"],
            ">= 0.7", _met(b["ratio_graphql_with_writer_to_floor"], 0.7, True))
        s = b["statements_per_request"]
        add("board SQL statements per request (incl. BEGIN/COMMIT)",
            f"{s['statements']}: miss {s['statements_miss']}, hit {s['statements_hit']} "
            f"(constant: {s['constant']})", "<= 4, constant",
            s["statements"] <= 4 and s["constant"])
    if "cold_reads" in r:
        c = r["cold_reads"]
        for name, label in (("cold_board", "board, cache off"),
                            ("cold_deals", "deals(first: 100), cache off")):
            if name in c:
                x = c[name]
                add(f"{label} / raw floor req/s (median of rounds)", x["ratio_rps"], ">= 0.8",
                    _met(x["ratio_rps"], 0.8, True))
                add(f"{label} p99 / floor p99", x["ratio_p99"], "<= 2",
                    _met(x["ratio_p99"], 2, False))
                add(f"{label} server CPU ms per request", x["cold_server_cpu_ms"], "<= 1.5",
                    _met(x["cold_server_cpu_ms"], 1.5, False) if name == "cold_board" else None)
                add(f"{label}: PostgreSQL connections opened per run (max)",
                    x["cold_connections_opened_max"], "<= pool size",
                    x["cold_connections_opened_max"] <= c.get("pool_size", 20))
        for name, label, target in (("warm_board_writer_same_board", "writer on the board",
                                     0.9),
                                    ("warm_board_writes_over_boards", "writes over boards",
                                     None)):
            if name in c:
                x = c[name]
                add(f"cached board with {label} / raw floor (hit ratio "
                    f"{x['cache_hit_ratio']})", x["ratio_rps"],
                    f">= {target}" if target else "reported",
                    _met(x["ratio_rps"], target, True) if target else None)
    if "live_latency" in r:
        for x in r["live_latency"]["results"]:
            add(f"live p99 send-to-receipt ms, {x['subscribers']} subscribers @ "
                f"{x['rate_per_s']}/s", x["send_to_receipt_ms"]["p99"],
                "<= 50 at 1,000; none lost/duplicated",
                (x["send_to_receipt_ms"]["p99"] <= 50 if x["subscribers"] == 1000 else None)
                if not x["bad_subscribers"] else False)
    if "subscribers" in r:
        s = r["subscribers"]
        last = next((x for x in reversed(s["steps"]) if "failed" not in x), None)
        add("idle subscriptions held by one API process", s["max_subscriptions_held"],
            ">= 10,000", _met(s["max_subscriptions_held"], 10000, True))
        if last:
            add("memory per subscription (KB)", last["kb_per_subscription"], "reported", None)
    if "forecast" in r:
        f = r["forecast"]
        add(f"forecast, largest tenant ({f['largest_tenant']['deals']} deals, "
            f"{f['largest_tenant']['events']} events) s", f["largest_tenant"]["median_s"],
            "<= 2", _met(f["largest_tenant"]["median_s"], 2, False))
        if "all_tenants" in f:
            add(f"forecast, all {f['all_tenants']['tenants']} tenants, one worker, s",
                f["all_tenants"]["total_s"], "<= 300",
                _met(f["all_tenants"]["total_s"], 300, False))
    if "tenant_count" in r:
        t = r["tenant_count"]
        add("board latency p50, 1,000 vs 10 tenants (ratio)",
            t["ratio_latency_p50_big_to_small"], "<= 1.1",
            _met(t["ratio_latency_p50_big_to_small"], 1.1, False))
        if "uncached_ratio_latency_p50_big_to_small" in t:
            add("board latency p50, 1,000 vs 10 tenants, response cache off (ratio)",
                t["uncached_ratio_latency_p50_big_to_small"], "<= 1.1",
                _met(t["uncached_ratio_latency_p50_big_to_small"], 1.1, False))
    if "mutations" in r:
        m = r["mutations"]
        add(f"moveDeal at {m['connections']} connections, {m['subscribers']} subscribers: "
            "moves/s | p99 ms", f"{m['moves_per_s']} | {m['latency_ms']['p99']}", "reported",
            None if not m["subscribers_with_loss_dup_or_disorder"] else False)
    if "analytics" in r:
        for name, q in r["analytics"]["queries"].items():
            value = q["median_ms"] if q["median_ms"] is not None else \
                f"> {q['timed_out_after_s']} s (cancelled)"
            add(f"analytics {name} on {r['analytics']['tenant']} ms", value, "reported", None)
    return rows


async def run_all(cfg: Config) -> dict[str, Any]:
    def want(name: str) -> bool:
        return cfg.only is None or name in cfg.only

    results: dict[str, Any] = {}
    owner_url = db_url(cfg.db)

    def save(name: str, result: dict[str, Any]) -> None:
        results[name] = result
        write_result(name, result, cfg.results / f"{name}.json")

    t = time.monotonic()
    if want("generate"):
        save("generate", await generate(db=cfg.db, tenants=cfg.tenants, scale=cfg.scale,
                                        seed=cfg.seed, end=None))
    if want("board"):
        save("board", await board.run(owner_url=owner_url, seconds=cfg.board_seconds,
                                      connections=cfg.connections, warmup=cfg.warmup,
                                      writer_rate=cfg.writer_rate,
                                      max_requests=cfg.max_requests))
    if want("cold_reads"):
        save("cold_reads", await cold_reads.run(
            owner_url=owner_url, db=cfg.db, rounds=cfg.cold_rounds, seconds=cfg.board_seconds,
            connections=cfg.connections, warmup=cfg.warmup, boards=cfg.cold_boards))
    if want("tenant_count"):
        save("tenant_count", await tenant_count.run(
            big_db=cfg.db, small_db=cfg.db + "_t10", seconds=cfg.board_seconds,
            warmup=cfg.warmup, max_requests=cfg.max_requests))
    if want("forecast"):
        save("forecast", await forecast.run(owner_url=owner_url, horizon=3,
                                            repeat=cfg.forecast_repeat, all_tenants=True,
                                            limit=None))
    if want("analytics"):
        save("analytics", await analytics.run(owner_url=owner_url, repeat=cfg.analytics_repeat,
                                              which="largest"))
    if want("live_latency"):
        save("live_latency", await live_latency.run(
            subscribers=cfg.live_subscribers, rate=cfg.live_rate, moves=cfg.live_moves,
            db_name=cfg.db + "_live"))
    if want("subscribers"):
        save("subscribers", await live.subscribers(owner_url=owner_url, steps=cfg.idle_steps))
    if want("mutations"):
        save("mutations", await live.mutations(
            owner_url=owner_url, connections=cfg.mutation_connections,
            subscribers_n=cfg.mutation_subscribers, seconds=cfg.mutation_seconds))
    # Benchmarks not run this time (--only) are summarised from their latest result files.
    latest = dict(results)
    for name in ("board", "cold_reads", "tenant_count", "forecast", "analytics", "live_latency",
                 "subscribers", "mutations"):
        path = cfg.results / f"{name}.json"
        if name not in latest and path.exists():
            latest[name] = json.loads(path.read_text())
    summary = {"scale": cfg.scale, "tenants": cfg.tenants, "database": cfg.db,
               "seconds": round(time.monotonic() - t, 1), "figures": summarise(latest),
               "from_files": sorted(set(latest) - set(results))}
    write_result("summary", summary, cfg.results / "summary.json")
    for row in summary["figures"]:
        mark = {True: "ok  ", False: "MISS", None: "    "}[row["met"]]
        print(f"{mark} {row['figure']}: {row['value']} (target {row['target']})",
              file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="short runs")
    parser.add_argument("--only", nargs="+", default=None,
                        help="subset: generate board cold_reads tenant_count forecast analytics "
                             "live_latency subscribers mutations")
    args = parser.parse_args()
    cfg = Config(db=args.db, scale=args.scale, tenants=args.tenants,
                 only=set(args.only) if args.only else None)
    if args.quick:
        cfg.board_seconds, cfg.warmup, cfg.mutation_seconds = 5, 1, 5
        cfg.live_subscribers, cfg.live_moves = [100, 1000], 20
        cfg.idle_steps = [1000, 5000, 10000]
    asyncio.run(run_all(cfg))


if __name__ == "__main__":
    main()
