"""Live-board latency: N websocket subscribers on one board, a writer moving deals steadily.

    python -m bench.live_latency --subscribers 100 1000 5000 --rate 2 --moves 60 [--floor]

Creates a fresh database (`saas_bench_live`, migrated) on BENCH_PG_URL, provisions a tenant
with ten deals, and starts one real API server process (`saas serve`, production settings,
LOG_LEVEL=warning) on BENCH_REDIS_URL. Subscribers and the writer run in this process on
one event loop (on the same 2 cores as the server: the client's own decoding adds to the
figures at high N).

Latency is measured on this machine's monotonic clock, from the moment the writer *sends*
the moveDeal HTTP request to the moment a subscriber has the event decoded
("send-to-receipt", an upper bound of commit-to-receipt: it includes the mutation's own
time). It is also reported from the moment the HTTP response arrived
("response-to-receipt"; it can be negative, because the event is published right after
commit, before the response is written). Every subscriber must receive exactly the moves,
in sequence order (loss or duplication fails the run).

The default rate is 2 moves/s: at 20 moves/s one process had to serialise 20,000 event
deliveries a second at 1,000 subscribers, which overloaded it and measured queueing, not
latency. (Events are rendered once per selection and caught-up subscribers are written to
by one fan-out task per board, so what remains per subscriber is mostly the websocket
write.) The result records each move's slowest delivery (`per_move_max_ms`) to tell stalls
from steady cost, and the server's CPU per delivery.

`--floor` also runs bench/ws_floor.py with the same subscribers, rate and client: a bare
ASGI app on the API's uvicorn configuration that sends one pre-encoded frame to every
connection (no GraphQL, database or Redis), i.e. what one process cannot go below on
this machine. Its figures go under `ws_floor`, with the server's own time per fan-out
loop (`fanout_loop_ms`).

Results go to bench/results/live_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import sys
import time
import uuid
from typing import Any

import httpx

from bench.board import MOVE
from bench.common import Server, api_server, ensure_database, pct, settings_for, write_result
from bench.wsclient import WsClient, open_many
from saas.db import Database, create_engine
from tenants import service
from tenants.credentials import issue_jwt

SEGMENTS = "query { segments { id pipeline { id stages { id kind position } } } }"
CREATE_DEAL = """mutation($input: CreateDealInput!) {
  createDeal(input: $input) { deal { id version } errors { code message } } }"""


@contextlib.contextmanager
def client_gc_paused() -> Any:
    """No garbage collection in this (client) process while it measures.

    With 1,000+ websockets and their received events, one of the client's own full
    collections took ~150 ms and showed up as one slow move in every run (the bare
    websocket floor too): the client's pause, not the server's latency.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def cpu_seconds(server: Any) -> float:
    """User + system CPU time of the server process so far (Linux /proc)."""
    with open(f"/proc/{server.proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one(n_subs: int, rate: float, moves: int, server: Any, settings: Any,
              db: Database) -> dict[str, Any]:
    slug = f"live-{uuid.uuid4().hex[:8]}"
    result = await service.provision_tenant(db=db, name=slug, slug=slug,
                                            admin_email=f"a@{slug}.test",
                                            admin_password="bench-password")
    token = issue_jwt(settings, service.principal_for_user(result.admin))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.http, headers=headers, timeout=60) as http:
        async def gql(query: str, **variables: Any) -> dict[str, Any]:
            r = await http.post("/graphql", json={"query": query, "variables": variables})
            body = r.json()
            assert "errors" not in body, body
            return body["data"]  # type: ignore[no-any-return]

        pipeline = (await gql(SEGMENTS))["segments"][0]["pipeline"]
        stages = [s["id"] for s in sorted(pipeline["stages"], key=lambda s: s["position"])
                  if s["kind"] == "OPEN"]
        deals: dict[str, int] = {}
        for i in range(10):
            d = (await gql(CREATE_DEAL, input={"pipelineId": pipeline["id"],
                                               "title": f"Deal {i}"}))["createDeal"]["deal"]
            deals[d["id"]] = d["version"]
        start_seq = 10  # ten 'created' events

        t_connect = time.monotonic()
        subs = await open_many(server.ws, token, n_subs, pipeline=pipeline["id"],
                               after=str(start_seq), batch=50)
        connect_s = time.monotonic() - t_connect
        rss_subscribed = server.rss_bytes()
        await asyncio.sleep(1.0)

        sent: dict[int, float] = {}
        answered: dict[int, float] = {}
        ids = list(deals)
        with client_gc_paused():
            t0 = time.monotonic()
            cpu0 = cpu_seconds(server)
            for m in range(moves):
                await asyncio.sleep(max(0.0, t0 + m / rate - time.monotonic()))
                deal = ids[m % len(ids)]
                before = time.monotonic()
                data = await gql(MOVE, deal=deal,
                                 to=stages[(m // len(ids) + 1) % len(stages)], v=deals[deal])
                after = time.monotonic()
                payload = data["moveDeal"]
                assert payload["errors"] == [], payload
                deals[deal] = payload["deal"]["version"]
                sent[payload["event"]["seq"]] = before
                answered[payload["event"]["seq"]] = after
            writer_s = time.monotonic() - t0
            server_cpu, received, errors = await _drain(subs, moves, server)
        metrics = (await http.get("/metrics")).text
    live_counters = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
                     if line.startswith(("saas_live_direct_writes_total",
                                         "saas_live_handbacks_total"))}

    return {
        "subscribers": n_subs, "moves": moves, "rate_per_s": rate,
        "writer_seconds": round(writer_s, 2), "connect_seconds": round(connect_s, 2),
        "server_rss_mb_subscribed": round(rss_subscribed / 2**20, 1),
        **_figures(received, sent, answered, errors, server_cpu - cpu0, n_subs * moves),
        # the server's fan-out counters so far (direct writes; hand-backs by reason)
        "live_counters": live_counters,
    }


async def _drain(subs: list[tuple[WsClient, str]], moves: int,
                 server: Any) -> tuple[float, list[list[tuple[int, float]]], int]:
    """Wait (up to 60 s) until every subscriber has `moves` events; close them all."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(  # noqa: ASYNC110 - many clients
            len(c.received[s]) < moves for c, s in subs):
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # anything extra (duplicates) arrives now
    server_cpu = cpu_seconds(server)
    received = [c.received[s] for c, s in subs]
    errors = sum(len(c.errors) for c, _ in subs)
    await asyncio.gather(*(c.close() for c, _ in subs))
    return server_cpu, received, errors


def _figures(received: list[list[tuple[int, float]]], sent: dict[int, float],
             answered: dict[int, float], errors: int, server_cpu: float,
             expected_deliveries: int) -> dict[str, Any]:
    expected = sorted(sent)
    bad = sum(1 for r in received if [s for s, _ in r] != expected)
    # Of those: still missing events when the (60 s) drain deadline passed, vs duplicated or
    # out of order (a wrong stream, not a slow one).
    late = sum(1 for r in received if len(r) < len(expected)
               and [s for s, _ in r] == expected[:len(r)])
    from_send = [(t - sent[s]) * 1000 for r in received for s, t in r if s in sent]
    from_resp = [(t - answered[s]) * 1000 for r in received for s, t in r if s in answered]
    per_move: dict[int, list[float]] = {s: [] for s in expected}
    for r in received:
        for s, t in r:
            if s in per_move:
                per_move[s].append((t - sent[s]) * 1000)
    return {
        "deliveries": len(from_send), "expected_deliveries": expected_deliveries,
        "bad_subscribers": bad, "incomplete_at_deadline": late,
        "duplicated_or_out_of_order": bad - late, "subscription_errors": errors,
        "send_to_receipt_ms": {"p50": round(pct(from_send, 50), 2),
                               "p99": round(pct(from_send, 99), 2),
                               "max": round(max(from_send), 2) if from_send else None,
                               "mean": round(statistics.fmean(from_send), 2)
                               if from_send else None},
        "response_to_receipt_ms": {"p50": round(pct(from_resp, 50), 2),
                                   "p99": round(pct(from_resp, 99), 2)},
        "mutation_ms_p50": round(pct([(answered[s] - sent[s]) * 1000 for s in sent], 50), 2),
        # The server process's CPU time from the first move to the end of the drain, per
        # delivery: steadier than latency on a shared machine.
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_us_per_delivery": round(server_cpu / max(1, len(from_send)) * 1e6, 1),
        # Slowest delivery of each move, in sending order (shows stalls and warm-up).
        "per_move_max_ms": [round(max(v), 1) if v else None for v in per_move.values()],
    }


async def floor_one(n_subs: int, rate: float, moves: int) -> dict[str, Any]:
    """The same subscribers, rate and client against bench.ws_floor (one frame to all)."""
    server = Server(argv=[sys.executable, "-m", "bench.ws_floor", "serve"], env={},
                    name="ws-floor", ready_path="/readyz").start()
    try:
        subs = await open_many(server.ws, "floor", n_subs, pipeline="floor", after=None,
                               batch=50)
        await asyncio.sleep(1.0)
        sent: dict[int, float] = {}
        answered: dict[int, float] = {}
        async with httpx.AsyncClient(base_url=server.http, timeout=60) as http:
            with client_gc_paused():
                cpu0 = cpu_seconds(server)
                t0 = time.monotonic()
                for m in range(moves):
                    await asyncio.sleep(max(0.0, t0 + m / rate - time.monotonic()))
                    before = time.monotonic()
                    r = await http.post("/fire", json={"seq": m + 1})
                    r.raise_for_status()
                    sent[m + 1], answered[m + 1] = before, time.monotonic()
                server_cpu, received, errors = await _drain(subs, moves, server)
            fanout = (await http.get("/stats")).json()["fanout_s"]
    finally:
        server.stop()
    return {"subscribers": n_subs, "moves": moves, "rate_per_s": rate,
            # the server's own time for one frame to every subscriber (its send loop)
            "fanout_loop_ms": {"p50": round(pct([f * 1000 for f in fanout], 50), 2),
                               "max": round(max(fanout) * 1000, 2) if fanout else None},
            **_figures(received, sent, answered, errors, server_cpu - cpu0, n_subs * moves)}


async def run(*, subscribers: list[int], rate: float, moves: int, floor: bool = False,
              db_name: str = "saas_bench_live") -> dict[str, Any]:
    owner_url = await ensure_database(db_name, fresh=True)
    settings = settings_for(owner_url)
    server = api_server(owner_url, name="live-api").start()
    db = Database(create_engine(settings.resolved_app_database_url(), pool_size=2))
    results = []
    try:
        for n in subscribers:
            r = await one(n, rate, moves, server, settings, db)
            print(r, file=sys.stderr, flush=True)
            results.append(r)
    finally:
        await db.dispose()
        server.stop()
    floors = []
    for n in subscribers if floor else []:
        r = await floor_one(n, rate, moves)
        print({"ws_floor": r}, file=sys.stderr, flush=True)
        floors.append(r)
    return {"results": results, **({"ws_floor": floors} if floor else {}),
            "lost_or_duplicated": any(r["bad_subscribers"] for r in [*results, *floors])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--rate", type=float, default=2.0, help="moves per second")
    parser.add_argument("--moves", type=int, default=60)
    parser.add_argument("--floor", action="store_true",
                        help="also measure bench.ws_floor (one frame to N bare websockets)")
    parser.add_argument("--client-loop", choices=["asyncio", "uvloop"], default="asyncio",
                        help="the benchmark client's event loop (it shares the server's cores)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    main_coro = run(subscribers=args.subscribers, rate=args.rate, moves=args.moves,
                    floor=args.floor)
    if args.client_loop == "uvloop":
        import uvloop

        result = uvloop.run(main_coro)
    else:
        result = asyncio.run(main_coro)
    result["client_loop"] = args.client_loop
    write_result("live_latency", result, args.out)
    if result["lost_or_duplicated"]:
        raise SystemExit("loss or duplication detected")


if __name__ == "__main__":
    main()
