"""Board query: throughput and latency of GraphQL vs the raw floor, reads only and with a writer.

    python -m bench.board [--db saas_bench] [--seconds 15] [--connections 16]

Needs a generated database (python -m bench.generate). Starts `saas serve` (production
settings, LOG_LEVEL=warning) and the raw floor (bench/raw_floor.py) as separate processes on
this machine, checks that both return the same board (8 stages x 25 cards of the "board"
tenant, each card with owner and contact), then loads each with wrk (bench/wrk/post.lua, 16
connections; an httpx loop when wrk is missing): reads only, then again while a writer moves
a deal of that board through the API 10 times a second. Also counts the SQL statements of
one board request (in-process, SQLAlchemy events incl. BEGIN/COMMIT) for several board sizes.
Writes bench/results/board.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from strawberry.relay import GlobalID

from bench.common import (
    DEFAULT_DB,
    Server,
    api_server,
    dsn,
    ensure_database,
    jwt_for,
    pct,
    redis_url,
    settings_for,
    write_result,
)
from bench.loadgen import have_wrk, run_load

QUERY = """query Board($p: ID!, $n: Int!) { board(pipelineId: $p, dealsPerStage: $n) {
  pipelineName columns { stage { id name kind position } dealCount
    deals { id title amount currency version owner { id name } contact { id name } } } } }"""
MOVE = """mutation Move($deal: ID!, $to: ID!, $v: Int!) {
  moveDeal(input: {dealId: $deal, toStageId: $to, expectedVersion: $v}) {
    deal { id version } event { seq } errors { code message } } }"""


@dataclass
class Target:
    tenant_id: uuid.UUID
    admin_id: uuid.UUID
    pipeline_id: uuid.UUID
    slug: str
    deals: int
    events: int

    @property
    def pipeline_gid(self) -> str:
        return str(GlobalID("Pipeline", str(self.pipeline_id)))

    @property
    def token(self) -> str:
        return jwt_for(self.tenant_id, self.admin_id)

    def body(self, per_stage: int = 25) -> bytes:
        return json.dumps({"query": QUERY, "variables": {"p": self.pipeline_gid,
                                                         "n": per_stage}}).encode()


async def tenants(owner_url: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn(owner_url))
    try:
        rows = await conn.fetch("SELECT * FROM bench_meta.tenants ORDER BY idx")
    finally:
        await conn.close()
    if not rows:
        raise SystemExit("no generated data: run python -m bench.generate first")
    return [dict(r) for r in rows]


def target_of(row: dict[str, Any]) -> Target:
    return Target(tenant_id=row["tenant_id"], admin_id=row["admin_id"],
                  pipeline_id=row["pipeline_id"], slug=row["slug"], deals=row["deals"],
                  events=row["events"])


async def board_target(owner_url: str, kind: str = "board") -> Target:
    rows = await tenants(owner_url)
    if kind == "largest":
        return target_of(max(rows, key=lambda r: r["deals"]))
    return target_of(next(r for r in rows if r["kind"] == kind))


def floor_server(owner_url: str, name: str = "floor") -> Server:
    from bench.common import SECRET

    return Server(argv=[sys.executable, "-m", "bench.raw_floor"],
                  env={"ENVIRONMENT": "production", "DATABASE_URL": owner_url,
                       "JWT_SECRET": SECRET, "UNSUBSCRIBE_SECRET": SECRET,
                       "REDIS_URL": redis_url(), "LOG_LEVEL": "warning"}, name=name)


async def fetch(base: str, target: Target, per_stage: int = 25) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(f"{base}/graphql", content=target.body(per_stage),
                              headers={"Authorization": f"Bearer {target.token}",
                                       "Content-Type": "application/json"})
        r.raise_for_status()
        body: dict[str, Any] = r.json()
    assert "errors" not in body, body
    return body


def board_shape(body: dict[str, Any]) -> dict[str, Any]:
    columns = body["data"]["board"]["columns"]
    cards = [d for c in columns for d in c["deals"]]
    return {"stages": len(columns), "cards": len(cards),
            "cards_with_owner": sum(1 for d in cards if d["owner"]),
            "cards_with_contact": sum(1 for d in cards if d["contact"]),
            "response_bytes": len(json.dumps(body, separators=(",", ":")))}


async def count_statements(owner_url: str, target: Target,
                           sizes: tuple[int, ...] = (1, 25, 100)) -> dict[str, Any]:
    """SQL statements one board request sends, by board size and for a cache miss and a hit
    (in-process app; saas.observability.statements counts what SQLAlchemy executes and what
    goes straight through asyncpg, BEGIN and COMMIT included)."""
    from saas.app import create_app
    from saas.observability.statements import statements

    # The caller's authorisation state is read once per AUTH_CACHE_TTL_SECONDS (one statement,
    # tenants/authcache.py), not per request: a long TTL keeps that refresh out of the count.
    app = create_app(settings_for(owner_url, auth_cache_ttl_seconds=3600.0))
    per_size: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        # The hub's first subscription resets the authorisation cache (tenants/authcache.py):
        # let it happen before the warm-up, so the counted requests find the caller cached.
        await asyncio.wait_for(app.state.services.hub.connected.wait(), 10)
        db = app.state.services.db
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            headers = {"Authorization": f"Bearer {target.token}",
                       "Content-Type": "application/json"}
            await client.post("/graphql", content=target.body(0), headers=headers)  # warm
            for n in sizes:
                # The first request of a size renders the board (a cache miss), the second
                # is served from the response cache: both are counted.
                per_size[str(n)] = {}
                for case in ("miss", "hit"):
                    async with statements(db) as seen:
                        r = await client.post("/graphql", content=target.body(n),
                                              headers=headers)
                    body = r.json()
                    assert "errors" not in body, body
                    per_size[str(n)][case] = {"statements": len(seen),
                                              "sequence": [q[:60] for q in seen],
                                              "cards": board_shape(body)["cards"]}
    counts = {v[case]["statements"] for v in per_size.values() for case in v}
    constant = all(len({v[case]["statements"] for v in per_size.values()}) == 1
                   for case in ("miss", "hit"))  # in board size, for misses and for hits
    return {"by_deals_per_stage": per_size, "constant": constant,
            "statements": max(counts),
            "statements_hit": max(v["hit"]["statements"] for v in per_size.values()),
            "statements_miss": max(v["miss"]["statements"] for v in per_size.values())}


@dataclass
class Writer:
    """Moves deals of the board through the API at a steady rate (between open stages)."""

    base: str
    target: Target
    rate: float
    moves: int = 0
    conflicts: int = 0
    failures: int = 0
    skipped: int = 0
    started_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _stop: bool = False

    async def _prepare(self, client: httpx.AsyncClient) -> tuple[list[list[Any]], list[str]]:
        body = await fetch(self.base, self.target, 25)
        columns = body["data"]["board"]["columns"]
        open_stages = [c["stage"]["id"] for c in columns if c["stage"]["kind"] == "OPEN"]
        cards = [[d["id"], d["version"], i] for i, c in enumerate(columns)
                 if c["stage"]["kind"] == "OPEN" for d in c["deals"]]
        return cards, open_stages

    async def _move(self, client: httpx.AsyncClient, card: list[Any], stages: list[str],
                    busy: set[str]) -> None:
        busy.add(card[0])
        card[2] = (card[2] + 1) % len(stages)
        t = time.monotonic()
        try:
            r = await client.post("/graphql", json={"query": MOVE, "variables": {
                "deal": card[0], "to": stages[card[2]], "v": card[1]}})
            payload = r.json()["data"]["moveDeal"]
            if payload["errors"]:
                self.conflicts += 1
            else:
                card[1] = payload["deal"]["version"]
                self.moves += 1
                self.latencies.append(time.monotonic() - t)
        except (httpx.HTTPError, KeyError, TypeError):
            self.failures += 1
        finally:
            busy.discard(card[0])

    async def _run(self) -> None:
        """Open loop: a move starts every 1/rate s whatever the latency of earlier ones (each
        on a card with no move in flight, so versions never conflict)."""
        headers = {"Authorization": f"Bearer {self.target.token}"}
        async with httpx.AsyncClient(base_url=self.base, headers=headers, timeout=60) as client:
            cards, stages = await self._prepare(client)
            if not cards or len(stages) < 2:
                raise RuntimeError("the board has no open cards to move")
            busy: set[str] = set()
            tasks: set[asyncio.Task[None]] = set()
            t0 = time.monotonic()
            k = j = 0
            while not self._stop:
                await asyncio.sleep(max(0.0, t0 + k / self.rate - time.monotonic()))
                k += 1
                free = [c for c in cards[j:] + cards[:j] if c[0] not in busy]
                if not free:
                    self.skipped += 1
                    continue
                j = (cards.index(free[0]) + 1) % len(cards)
                task = asyncio.create_task(self._move(client, free[0], stages, busy))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            self.started_s = time.monotonic() - t0
            if tasks:
                await asyncio.gather(*tasks)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, Any]:
        self._stop = True
        assert self._task is not None
        await self._task
        ms = [x * 1000 for x in self.latencies]
        return {"rate_per_s": self.rate, "moves": self.moves, "errors": self.conflicts,
                "failures": self.failures, "skipped_no_free_card": self.skipped,
                "achieved_per_s": round(self.moves / self.started_s, 2) if self.started_s
                else None,
                "move_ms": {"p50": round(pct(ms, 50), 2), "p99": round(pct(ms, 99), 2)}}


async def load(server: Server, target: Target, *, seconds: float, connections: int,
               warmup: float, max_requests: int | None = None) -> dict[str, Any]:
    url = f"{server.http}/graphql"
    if warmup:
        await run_load(url, target.body(), target.token, connections=connections,
                       seconds=warmup, max_requests=max_requests)
    return await run_load(url, target.body(), target.token, connections=connections,
                          seconds=seconds, max_requests=max_requests)


async def run(*, owner_url: str, seconds: float, connections: int, warmup: float,
              writer_rate: float, max_requests: int | None = None) -> dict[str, Any]:
    target = await board_target(owner_url)
    statements = await count_statements(owner_url, target)
    api = api_server(owner_url, name="board-api").start()
    floor = floor_server(owner_url).start()
    try:
        graphql_body = await fetch(api.http, target)
        floor_body = await fetch(floor.http, target)
        # The API's answers also report the operation's cost (extensions.cost, docs/edge.md).
        same = graphql_body["data"] == floor_body["data"]
        if not same:
            raise SystemExit("the floor and the API return different boards")
        shape = board_shape(graphql_body)
        runs: dict[str, Any] = {}
        for name, server in (("graphql", api), ("floor", floor)):
            runs[name] = await load(server, target, seconds=seconds, connections=connections,
                                    warmup=warmup, max_requests=max_requests)
            print(f"{name}: {runs[name]['rps']} req/s, p99 {runs[name]['latency_ms']['p99']} ms",
                  file=sys.stderr)
        for name, server in (("graphql_with_writer", api), ("floor_with_writer", floor)):
            writer = Writer(api.http, target, writer_rate)
            writer.start()
            await asyncio.sleep(0.5)
            runs[name] = await load(server, target, seconds=seconds, connections=connections,
                                    warmup=0, max_requests=max_requests)
            runs[name]["writer"] = await writer.stop()
            print(f"{name}: {runs[name]['rps']} req/s, p99 {runs[name]['latency_ms']['p99']} ms",
                  file=sys.stderr)
    finally:
        api.stop()
        floor.stop()
    g, f = runs["graphql"]["rps"], runs["floor"]["rps"]
    gw, fw = runs["graphql_with_writer"]["rps"], runs["floor_with_writer"]["rps"]
    return {
        "tenant": target.slug, "tenant_deals": target.deals, "board": shape,
        "same_response_as_floor": same, "load_tool": "wrk" if have_wrk() else "httpx",
        "connections": connections, "seconds_per_run": seconds,
        "runs": runs,
        "ratio_graphql_to_floor": round(g / f, 3) if f else None,
        "ratio_graphql_with_writer_to_floor": round(gw / f, 3) if f else None,
        "ratio_graphql_with_writer_to_floor_with_writer": round(gw / fw, 3) if fw else None,
        "statements_per_request": statements,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--writer-rate", type=float, default=10)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    # An existing database is migrated to the current head (e.g. generated before a migration).
    owner_url = asyncio.run(ensure_database(args.db))
    result = asyncio.run(run(owner_url=owner_url, seconds=args.seconds,
                             connections=args.connections, warmup=args.warmup,
                             writer_rate=args.writer_rate))
    write_result("board", result, args.out)


if __name__ == "__main__":
    main()
