"""Cold reads: the board with the response cache off, deals(first: 100) with owner, contact
and company, and contactsConnection(first: 50) with company, each against the raw floor in
one interleaved run; then the cached board with a writer on the same board (10 moves/s)
and with writes spread over 50 boards (20 moves/s).

    python -m bench.cold_reads [--db saas_bench] [--rounds 3] [--seconds 15] [--connections 16]

Three server processes at once: `saas serve` with BOARD_CACHE_ENTRIES=0 ("cold"), `saas serve`
as configured ("warm", the response cache on) and the raw floor (bench/raw_floor.py, which
answers both queries with one hand-written statement each). Before loading, each API's
responses must equal the floor's. Then, per round, every pairing runs back to back in
alternating order (floor first in odd rounds), so both sides of a ratio see the same moment of
a shared machine; the figures are medians over rounds of each side and of the per-round
ratios. Per run: req/s and latency (wrk, 16 connections), server CPU per request (the server
process's utime+stime from /proc), PostgreSQL CPU per request (its backends of this
database), and PostgreSQL connections opened (pg_stat_database.sessions). With a writer:
the API's response-cache hit ratio (its /metrics). Writes bench/results/cold_reads.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

import asyncpg
import httpx

from bench.board import Target, Writer, board_target, fetch, floor_server
from bench.common import DEFAULT_DB, Server, api_server, dsn, ensure_database, write_result
from bench.loadgen import have_wrk, run_load

DEALS = """query Deals($first: Int!) { deals(first: $first) {
  edges { cursor node { id title amount currency version owner { id name }
    contact { id name } company { id name } } }
  pageInfo { hasNextPage endCursor } } }"""
CONTACTS = """query Contacts($contacts: Int!) { contactsConnection(first: $contacts) {
  totalCount edges { cursor node { id name email company { id name } } }
  pageInfo { hasNextPage endCursor } } }"""
SEGMENT = """mutation($name: String!) { createSegment(input: {name: $name}) {
  segment { pipeline { id stages { id kind } } } errors { code message } } }"""
DEAL = """mutation($p: ID!, $s: ID!, $t: String!) { createDeal(input: {pipelineId: $p,
  stageId: $s, title: $t}) { deal { id } errors { code message } } }"""
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


class Probe:
    """Server and PostgreSQL CPU and new PostgreSQL sessions over one run."""

    def __init__(self, admin: asyncpg.Connection, server: Server, db: str) -> None:
        self.admin, self.server, self.db = admin, server, db

    async def _backends(self) -> dict[int, float]:
        pids = await self.admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            self.db)
        out = {}
        for row in pids:
            try:
                out[row["pid"]] = cpu_seconds(row["pid"])
            except OSError:
                continue
        return out

    async def _sessions(self) -> int:
        await self.admin.execute("SELECT pg_stat_clear_snapshot()")
        return int(await self.admin.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = $1", self.db))

    async def start(self) -> None:
        assert self.server.proc is not None
        self.cpu0 = cpu_seconds(self.server.proc.pid)
        self.pg0 = await self._backends()
        self.sessions0 = await self._sessions()

    async def stop(self, requests: int) -> dict[str, Any]:
        assert self.server.proc is not None
        cpu = cpu_seconds(self.server.proc.pid) - self.cpu0
        pg1 = await self._backends()
        pg = sum(v - self.pg0.get(pid, 0.0) for pid, v in pg1.items())
        # Backends report their stats within a second of idling; on a slow box a session of
        # the previous round was once counted in this one after 1.5 s.
        await asyncio.sleep(3.0)
        opened = await self._sessions() - self.sessions0
        n = max(1, requests)
        return {"server_cpu_ms_per_request": round(cpu * 1000 / n, 3),
                "postgres_cpu_ms_per_request": round(pg * 1000 / n, 3),
                "postgres_connections_opened": opened}


async def cache_counts(server: Server) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{server.http}/metrics")).text
    out = {}
    for line in text.splitlines():
        if line.startswith("saas_board_cache_total{"):
            result = line.split('result="')[1].split('"')[0]
            out[result] = float(line.rsplit(" ", 1)[1])
    return out


async def post(server: Server, target: Target, body: bytes) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.post(f"{server.http}/graphql", content=body, headers={
            "Authorization": f"Bearer {target.token}", "Content-Type": "application/json"})
        r.raise_for_status()
        data: dict[str, Any] = r.json()
    return data


def deals_body(first: int = 100) -> bytes:
    return json.dumps({"query": DEALS, "variables": {"first": first}}).encode()


def contacts_body(first: int = 50) -> bytes:
    return json.dumps({"query": CONTACTS, "variables": {"contacts": first}}).encode()


async def ensure_boards(api: Server, target: Target, boards: int) -> list[str]:
    """The tenant's pipelines, adding segments (default stages, 8 deals each) up to `boards`."""
    async with httpx.AsyncClient(base_url=api.http, timeout=60, headers={
            "Authorization": f"Bearer {target.token}"}) as client:
        segments = (await client.post("/graphql", json={
            "query": "{ segments { pipeline { id } } }"})).json()["data"]["segments"]
        ids = [s["pipeline"]["id"] for s in segments]
        for i in range(len(ids), boards):
            made = (await client.post("/graphql", json={"query": SEGMENT, "variables": {
                "name": f"bench board {i}"}})).json()["data"]["createSegment"]
            pipeline = made["segment"]["pipeline"]
            open_stages = [s["id"] for s in pipeline["stages"] if s["kind"] == "OPEN"]
            for k in range(8):
                await client.post("/graphql", json={"query": DEAL, "variables": {
                    "p": pipeline["id"], "s": open_stages[k % len(open_stages)],
                    "t": f"bench deal {i}.{k}"}})
            ids.append(pipeline["id"])
    return ids[:boards]


class SpreadWriter(Writer):
    """The board writer, moving cards of several boards in turn."""

    def __init__(self, base: str, targets: list[Target], rate: float) -> None:
        super().__init__(base, targets[0], rate)
        self.targets = targets

    async def _prepare(self, client: httpx.AsyncClient) -> tuple[list[list[Any]], list[str]]:
        cards: list[list[Any]] = []
        stages_of: dict[str, list[str]] = {}
        per_board = []
        for t in self.targets:
            body = await fetch(self.base, t, 25)
            columns = body["data"]["board"]["columns"]
            stages = [c["stage"]["id"] for c in columns if c["stage"]["kind"] == "OPEN"]
            mine = [[d["id"], d["version"], i] for i, c in enumerate(columns)
                    if c["stage"]["kind"] == "OPEN" for d in c["deals"]]
            for card in mine:
                stages_of[card[0]] = stages
            per_board.append(mine[:4])
        # Interleave the boards so consecutive moves land on different boards.
        for group in zip(*per_board, strict=False):
            cards.extend(group)
        self.stages_of = stages_of
        return cards, next(iter(stages_of.values()))

    async def _move(self, client: httpx.AsyncClient, card: list[Any], stages: list[str],
                    busy: set[str]) -> None:
        await super()._move(client, card, self.stages_of[card[0]], busy)


async def measure(server: Server, target: Target, body: bytes, probe: Probe, *,
                  seconds: float, connections: int) -> dict[str, Any]:
    await probe.start()
    result = await run_load(f"{server.http}/graphql", body, target.token,
                            connections=connections, seconds=seconds)
    result.update(await probe.stop(result["requests"]))
    return result


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def summarise(rounds: list[dict[str, Any]], api: str) -> dict[str, Any]:
    def col(side: str, *path: str) -> list[float]:
        out = []
        for r in rounds:
            v: Any = r[side]
            for p in path:
                v = v[p]
            out.append(float(v))
        return out

    return {
        f"{api}_rps": median(col(api, "rps")), "floor_rps": median(col("floor", "rps")),
        "ratio_rps": median([a / f for a, f in zip(col(api, "rps"), col("floor", "rps"),
                                                   strict=True)]),
        f"{api}_p99_ms": median(col(api, "latency_ms", "p99")),
        "floor_p99_ms": median(col("floor", "latency_ms", "p99")),
        "ratio_p99": median([a / f for a, f in zip(col(api, "latency_ms", "p99"),
                                                   col("floor", "latency_ms", "p99"),
                                                   strict=True)]),
        f"{api}_server_cpu_ms": median(col(api, "server_cpu_ms_per_request")),
        "floor_server_cpu_ms": median(col("floor", "server_cpu_ms_per_request")),
        f"{api}_postgres_cpu_ms": median(col(api, "postgres_cpu_ms_per_request")),
        "floor_postgres_cpu_ms": median(col("floor", "postgres_cpu_ms_per_request")),
        f"{api}_connections_opened_max": max(col(api, "postgres_connections_opened")),
        "floor_connections_opened_max": max(col("floor", "postgres_connections_opened")),
    }


async def run(*, owner_url: str, db: str, rounds: int, seconds: float, connections: int,
              warmup: float, boards: int = 50, only: set[str] | None = None) -> dict[str, Any]:
    target = await board_target(owner_url)
    # Generous start-up timeouts: three servers start on a machine that may be loaded.
    cold = api_server(owner_url, name="cold-api", BOARD_CACHE_ENTRIES="0")
    warm = api_server(owner_url, name="warm-api")
    floor = floor_server(owner_url)
    try:
        for server in (cold, warm, floor):
            server.start(timeout=120)
    except BaseException:
        for server in (cold, warm, floor):
            server.stop()
        raise
    admin = await asyncpg.connect(dsn(owner_url))
    out: dict[str, Any] = {"tenant": target.slug, "load_tool": "wrk" if have_wrk() else "httpx",
                           "connections": connections, "seconds_per_run": seconds,
                           "rounds": rounds, "pool_size": int(os.environ.get(
                               "DB_POOL_SIZE", "20"))}
    try:
        board = target.body(25)
        deals = deals_body(100)
        contacts = contacts_body(50)
        for name, body in (("board", board), ("deals", deals), ("contacts", contacts)):
            want = (await post(floor, target, body))["data"]
            for api in (cold, warm):
                got = (await post(api, target, body))["data"]  # the API adds extensions.cost
                if got != want:
                    raise SystemExit(f"{api.name} and the floor answer {name} differently")
        out["board_cards"] = sum(len(c["deals"]) for c in
                                 (await post(floor, target, board))["data"]["board"]["columns"])
        for server, body in ((floor, board), (cold, board), (warm, board), (floor, deals),
                             (cold, deals), (floor, contacts), (cold, contacts)):
            await run_load(f"{server.http}/graphql", body, target.token,
                           connections=connections, seconds=warmup)
        probes = {s.name: Probe(admin, s, db) for s in (cold, warm, floor)}

        async def pair(api: Server, body: bytes, i: int, label: str,
                       writer: Writer | None = None) -> dict[str, Any]:
            order = [floor, api] if i % 2 == 0 else [api, floor]
            result: dict[str, Any] = {}
            before: dict[str, float] = {}
            for server in order:
                side = "floor" if server is floor else label
                if writer is not None and server is api:
                    before = await cache_counts(api)
                result[side] = await measure(server, target, body, probes[server.name],
                                             seconds=seconds, connections=connections)
                if writer is not None and server is api:
                    after = await cache_counts(api)
                    hits = after.get("hit", 0) - before.get("hit", 0)
                    misses = after.get("miss", 0) - before.get("miss", 0)
                    result[side]["cache_hit_ratio"] = round(hits / max(1, hits + misses), 3)
            print(f"{label} round {i}: {result[label]['rps']} vs floor "
                  f"{result['floor']['rps']} req/s", file=sys.stderr)
            return result

        scenarios: list[tuple[str, Server, bytes, str, Any]] = [
            ("cold_board", cold, board, "cold", None),
            ("cold_deals", cold, deals, "cold", None),
            ("cold_contacts", cold, contacts, "cold", None),
            ("warm_board", warm, board, "warm", None),
            ("warm_board_writer_same_board", warm, board, "warm", "same"),
            ("warm_board_writes_over_boards", warm, board, "warm", "spread"),
        ]
        pipelines = None
        for name, api, body, label, writer_kind in scenarios:
            if only and name not in only:
                continue
            per_round = []
            writer: Writer | None = None
            if writer_kind == "same":
                writer = Writer(warm.http, target, 10)
            elif writer_kind == "spread":
                pipelines = pipelines or await ensure_boards(warm, target, boards)
                targets = [Target(target.tenant_id, target.admin_id, _uuid(p), target.slug,
                                  target.deals, target.events) for p in pipelines]
                writer = SpreadWriter(warm.http, targets, 20)
            if writer is not None:
                writer.start()
                # Reading 50 boards to pick cards takes a while on a loaded machine: measure
                # only once the writer is moving.
                deadline = time.monotonic() + 300
                while writer.moves == 0 and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.0)
            try:
                for i in range(rounds):
                    per_round.append(await pair(api, body, i, label, writer))
            finally:
                moves = await writer.stop() if writer is not None else None
            entry: dict[str, Any] = {"rounds": per_round, **summarise(per_round, label)}
            if writer_kind == "spread":
                entry["boards"] = boards
            if writer is not None:
                entry["cache_hit_ratio"] = median(
                    [r[label]["cache_hit_ratio"] for r in per_round])
                entry["writer"] = moves
            out[name] = entry
    finally:
        await admin.close()
        for server in (cold, warm, floor):
            server.stop()
    return out


def _uuid(global_id: str) -> Any:
    from schema.nodes import decode_id

    return decode_id(global_id, "Pipeline", field="pipelineId")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--boards", type=int, default=50,
                        help="boards the spread writer moves deals on")
    parser.add_argument("--only", nargs="+", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    owner_url = asyncio.run(ensure_database(args.db))
    started = time.monotonic()
    result = asyncio.run(run(owner_url=owner_url, db=args.db, rounds=args.rounds,
                             seconds=args.seconds, connections=args.connections,
                             warmup=args.warmup, boards=args.boards,
                             only=set(args.only) if args.only else None))
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    write_result("cold_reads", result, args.out)


if __name__ == "__main__":
    main()
