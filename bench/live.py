"""Subscriptions: idle subscriptions per API process, and moveDeal throughput with subscribers.

    python -m bench.live subscribers [--db saas_bench] [--steps 1000 2500 5000 10000]
    python -m bench.live mutations   [--db saas_bench] [--connections 16] [--subscribers 100]

`subscribers`: one `saas serve` process (production settings); opens websocket connections
with one idle boardEvents subscription each (on a board nobody moves) in steps; at each step
reports the server's RSS (memory per subscription = RSS growth / subscriptions), a board
query's latency (median of 20 sequential requests) and the latency of one move on another
tenant's board to a probe subscriber (median of 5). Stops early when a step fails.

`mutations`: `subscribers` websocket subscribers on the board tenant's pipeline, then
`connections` concurrent clients each moving its own deals (no version conflicts) for
--seconds; reports moves/s and latency p50/p99, and checks every subscriber received every
move exactly once, in sequence order. The load generator is Python (httpx) on the same 2
cores, so the figure is a lower bound. Writes bench/results/{subscribers,mutations}.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

import httpx

from bench.board import MOVE, QUERY, Target, board_target, fetch, target_of, tenants
from bench.common import DEFAULT_DB, api_server, db_url, pct, write_result
from bench.wsclient import WsClient, open_many


async def _open_cards(base: str, target: Target) -> tuple[list[list[Any]], list[str]]:
    body = await fetch(base, target, 100)
    columns = body["data"]["board"]["columns"]
    stages = [c["stage"]["id"] for c in columns if c["stage"]["kind"] == "OPEN"]
    cards = [[d["id"], d["version"], i] for i, c in enumerate(columns)
             if c["stage"]["kind"] == "OPEN" for d in c["deals"]]
    return cards, stages


async def _move(client: httpx.AsyncClient, card: list[Any], stages: list[str]) -> int:
    card[2] = (card[2] + 1) % len(stages)
    r = await client.post("/graphql", json={"query": MOVE, "variables": {
        "deal": card[0], "to": stages[card[2]], "v": card[1]}})
    payload = r.json()["data"]["moveDeal"]
    if payload["errors"]:
        raise RuntimeError(f"move failed: {payload['errors']}")
    card[1] = payload["deal"]["version"]
    return int(payload["event"]["seq"])


async def _tenant_head(owner_url: str, target: Target) -> int:
    import asyncpg

    from bench.common import dsn

    conn = await asyncpg.connect(dsn(owner_url))
    try:
        return int(await conn.fetchval(
            "SELECT event_seq FROM tenant_counters WHERE tenant_id = $1", target.tenant_id))
    finally:
        await conn.close()


async def subscribers(*, owner_url: str, steps: list[int], probe_moves: int = 5
                      ) -> dict[str, Any]:
    rows = await tenants(owner_url)
    probe = target_of(next(r for r in rows if r["kind"] == "board"))
    idle = target_of(next(r for r in rows if r["kind"] == "small") if len(rows) > 1
                     else rows[0])
    server = api_server(owner_url, name="subscribers-api").start()
    clients: list[tuple[WsClient, str]] = []
    figures: list[dict[str, Any]] = []
    try:
        cards, stages = await _open_cards(server.http, probe)
        base_rss = server.rss_bytes()
        headers = {"Authorization": f"Bearer {probe.token}"}
        async with httpx.AsyncClient(base_url=server.http, headers=headers, timeout=60) as http:
            for n in steps:
                t = time.monotonic()
                try:
                    clients += await open_many(server.ws, idle.token, n - len(clients),
                                               pipeline=idle.pipeline_gid, after=None)
                except Exception as e:  # report where it broke
                    figures.append({"subscriptions": n, "failed": f"{type(e).__name__}: {e}"})
                    break
                connect_s = time.monotonic() - t
                await asyncio.sleep(1.0)
                errors = sum(len(c.errors) for c, _ in clients)
                rss = server.rss_bytes()
                board_ms = []
                for _ in range(20):
                    t = time.monotonic()
                    r = await http.post("/graphql", json={"query": QUERY, "variables": {
                        "p": probe.pipeline_gid, "n": 25}})
                    assert r.status_code == 200 and "errors" not in r.json()
                    board_ms.append((time.monotonic() - t) * 1000)
                watcher = await WsClient.open(server.ws, probe.token)
                sid = await watcher.subscribe(p=probe.pipeline_gid,
                                              after=str(await _tenant_head(owner_url, probe)))
                await asyncio.sleep(0.3)
                move_ms = []
                for _ in range(probe_moves):
                    watcher.arrived.clear()
                    t = time.monotonic()
                    await _move(http, cards[0], stages)
                    await asyncio.wait_for(watcher.arrived.wait(), 30)
                    move_ms.append((watcher.received[sid][-1][1] - t) * 1000)
                await watcher.close()
                step = {"subscriptions": len(clients), "connect_seconds": round(connect_s, 2),
                        "subscription_errors": errors, "server_rss_mb": round(rss / 2**20, 1),
                        "kb_per_subscription": round((rss - base_rss) / max(len(clients), 1)
                                                     / 1024, 1),
                        "board_query_ms_p50": round(statistics.median(board_ms), 2),
                        "probe_move_to_receipt_ms_p50": round(statistics.median(move_ms), 2)}
                figures.append(step)
                print(step, file=sys.stderr, flush=True)
    finally:
        await asyncio.gather(*(c.close() for c, _ in clients))
        server.stop()
    return {"base_rss_mb": round(base_rss / 2**20, 1), "steps": figures,
            "max_subscriptions_held": max((f["subscriptions"] for f in figures
                                           if "failed" not in f), default=0)}


async def mutations(*, owner_url: str, connections: int, subscribers_n: int,
                    seconds: float) -> dict[str, Any]:
    target = await board_target(owner_url)
    server = api_server(owner_url, name="mutations-api").start()
    subs: list[tuple[WsClient, str]] = []
    try:
        cards, stages = await _open_cards(server.http, target)
        if len(cards) < connections:
            raise SystemExit(f"only {len(cards)} open cards for {connections} writers")
        head = await _tenant_head(owner_url, target)
        subs = await open_many(server.ws, target.token, subscribers_n,
                               pipeline=target.pipeline_gid, after=str(head))
        await asyncio.sleep(1.0)
        latencies: list[float] = []
        seqs: list[int] = []
        headers = {"Authorization": f"Bearer {target.token}"}
        deadline = time.monotonic() + seconds

        async def worker(k: int) -> None:
            mine = cards[k::connections]
            async with httpx.AsyncClient(base_url=server.http, headers=headers,
                                         timeout=60) as http:
                i = 0
                while time.monotonic() < deadline:
                    t = time.monotonic()
                    seqs.append(await _move(http, mine[i % len(mine)], stages))
                    latencies.append(time.monotonic() - t)
                    i += 1

        t0 = time.monotonic()
        await asyncio.gather(*(worker(k) for k in range(connections)))
        elapsed = time.monotonic() - t0
        expected = sorted(seqs)
        # Wait for the fan-out to drain (bounded).
        drain_deadline = time.monotonic() + 60
        while time.monotonic() < drain_deadline and any(  # noqa: ASYNC110 - many clients
                len(c.received[s]) < len(expected) for c, s in subs):
            await asyncio.sleep(0.2)
        bad = sum(1 for c, s in subs if [q for q, _ in c.received[s]] != expected)
        errors = sum(len(c.errors) for c, _ in subs)
    finally:
        await asyncio.gather(*(c.close() for c, _ in subs))
        server.stop()
    ms = [x * 1000 for x in latencies]
    return {"connections": connections, "subscribers": subscribers_n, "seconds": round(elapsed, 2),
            "moves": len(seqs), "moves_per_s": round(len(seqs) / elapsed, 1),
            "latency_ms": {"p50": round(pct(ms, 50), 2), "p99": round(pct(ms, 99), 2),
                           "max": round(max(ms), 2)},
            "subscribers_with_loss_dup_or_disorder": bad, "subscription_errors": errors,
            "load_tool": "httpx (Python, same machine)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="which", required=True)
    s = sub.add_parser("subscribers")
    s.add_argument("--steps", type=int, nargs="+", default=[1000, 2500, 5000, 10000])
    m = sub.add_parser("mutations")
    m.add_argument("--connections", type=int, default=16)
    m.add_argument("--subscribers", type=int, default=100)
    m.add_argument("--seconds", type=float, default=15)
    for p in (s, m):
        p.add_argument("--db", default=DEFAULT_DB)
        p.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.which == "subscribers":
        result = asyncio.run(subscribers(owner_url=db_url(args.db), steps=args.steps))
    else:
        result = asyncio.run(mutations(owner_url=db_url(args.db), connections=args.connections,
                                       subscribers_n=args.subscribers, seconds=args.seconds))
    write_result(args.which, result, args.out)


if __name__ == "__main__":
    main()
