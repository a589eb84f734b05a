"""Live-board latency: N websocket subscribers on one board, a writer moving deals steadily.

    python bench/live_latency.py --subscribers 100 1000 --rate 20 --moves 200

Starts embedded PostgreSQL/Redis (unless DATABASE_URL/REDIS_URL are set), a fresh
database, and one real API server process (`python -m saas.cli serve`). Subscribers and
the writer run in this process on one event loop.

Latency is measured on this machine's monotonic clock, from the moment the writer
*sends* the moveDeal HTTP request to the moment a subscriber has the event decoded
("send-to-receipt", an upper bound of commit-to-receipt: it includes the mutation's own
time). It is also reported from the moment the HTTP response arrived
("response-to-receipt"); that one can be negative, because the event is published right
after commit, before the response is written. Every subscriber must receive exactly the
moves, in sequence order (loss or duplication fails the run). Results go to
bench/results/live_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from saas import embedded, migrate  # noqa: E402
from saas.db import Database, create_engine  # noqa: E402
from saas.settings import Settings  # noqa: E402
from tenants import service  # noqa: E402
from tenants.credentials import issue_jwt  # noqa: E402
from tests.deals.ops import CREATE_DEAL, MOVE, SEGMENTS  # noqa: E402
from tests.live.support import ApiServer, WsClient  # noqa: E402

SECRET = "bench-secret-" + "x" * 40
SUBSCRIPTION = """subscription($p: ID!, $after: String) {
  boardEvents(pipelineId: $p, after: $after) { __typename ... on DealEvent { seq } } }"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def create_database(server_url: str) -> str:
    name = f"saas_bench_{uuid.uuid4().hex[:8]}"
    dsn = make_url(server_url).set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def run(n_subs: int, rate: float, moves: int, server: ApiServer, settings: Settings,
              db: Database) -> dict[str, Any]:
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    result = await service.provision_tenant(db=db, name=slug, slug=slug,
                                            admin_email=f"a@{slug}.test",
                                            admin_password="bench-password")
    principal = service.principal_for_user(result.admin)
    token = issue_jwt(settings, principal)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.http, headers=headers, timeout=30) as http:
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

        # Subscribers: connect in batches so the server's accept queue is not flooded.
        clients: list[WsClient] = []
        sids: list[str] = []
        t_connect = time.monotonic()
        for i in range(0, n_subs, 50):
            batch = await asyncio.gather(*(WsClient.open(server.ws, token)
                                           for _ in range(min(50, n_subs - i))))
            for c in batch:
                clients.append(c)
                sids.append(await c.subscribe(SUBSCRIPTION, p=pipeline["id"],
                                              after=str(start_seq)))
        connect_s = time.monotonic() - t_connect
        await asyncio.sleep(1.0)

        received: list[list[tuple[int, float]]] = [[] for _ in clients]

        async def consume(k: int) -> None:
            c, sid = clients[k], sids[k]
            while len(received[k]) < moves:
                msg = await c.inbox[sid].get()
                now = time.monotonic()
                assert msg["type"] == "next" and "errors" not in msg["payload"], msg
                received[k].append((msg["payload"]["data"]["boardEvents"]["seq"], now))

        consumers = [asyncio.create_task(consume(k)) for k in range(len(clients))]
        sent: dict[int, float] = {}
        answered: dict[int, float] = {}
        ids = list(deals)
        t0 = time.monotonic()
        for m in range(moves):
            target = t0 + m / rate
            await asyncio.sleep(max(0.0, target - time.monotonic()))
            deal = ids[m % len(ids)]
            before = time.monotonic()
            data = await gql(MOVE, deal=deal, to=stages[(m // len(ids) + 1) % len(stages)],
                             v=deals[deal])
            after = time.monotonic()
            payload = data["moveDeal"]
            assert payload["errors"] == [], payload
            deals[deal] = payload["deal"]["version"]
            sent[payload["event"]["seq"]] = before
            answered[payload["event"]["seq"]] = after
        writer_s = time.monotonic() - t0
        try:
            await asyncio.wait_for(asyncio.gather(*consumers), 60)
        finally:
            for task in consumers:
                task.cancel()
        extra = 0
        await asyncio.sleep(0.5)
        for c, sid in zip(clients, sids, strict=True):
            extra += c.inbox[sid].qsize()
        await asyncio.gather(*(c.close() for c in clients))

    expected = sorted(sent)
    lost_or_dup = sum(1 for r in received if [s for s, _ in r] != expected) + extra
    from_send = [(t - sent[s]) * 1000 for r in received for s, t in r]
    from_resp = [(t - answered[s]) * 1000 for r in received for s, t in r]
    return {
        "subscribers": n_subs, "moves": moves, "rate_per_s": rate,
        "writer_seconds": round(writer_s, 2), "connect_seconds": round(connect_s, 2),
        "deliveries": len(from_send), "bad_subscribers": lost_or_dup,
        "send_to_receipt_ms": {"p50": round(pct(from_send, 50), 2),
                               "p99": round(pct(from_send, 99), 2),
                               "max": round(max(from_send), 2),
                               "mean": round(statistics.fmean(from_send), 2)},
        "response_to_receipt_ms": {"p50": round(pct(from_resp, 50), 2),
                                   "p99": round(pct(from_resp, 99), 2)},
        "mutation_ms_p50": round(pct([(answered[s] - sent[s]) * 1000 for s in sent], 50), 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rate", type=float, default=20.0, help="moves per second")
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "live_latency.json"))
    args = parser.parse_args()

    servers = None
    pg_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not pg_url or not redis_url:
        servers = embedded.start(ROOT / ".data" / "bench")
        pg_url, redis_url = pg_url or servers.database_url, redis_url or servers.redis_url
    owner_url = await create_database(pg_url)
    settings = Settings(environment="test", database_url=owner_url, redis_url=redis_url,
                        jwt_secret=SECRET, unsubscribe_secret=SECRET)
    await asyncio.to_thread(migrate.upgrade, owner_url, settings)
    log_path = ROOT / ".data" / "bench-server.log"
    server = ApiServer({"ENVIRONMENT": "test", "DATABASE_URL": owner_url,
                        "REDIS_URL": redis_url, "JWT_SECRET": SECRET,
                        "UNSUBSCRIBE_SECRET": SECRET, "LOG_LEVEL": "WARNING"}, log_path)
    server.start()
    db = Database(create_engine(settings.resolved_app_database_url(), pool_size=2))
    results = []
    try:
        await asyncio.to_thread(server.wait_ready)
        for n in args.subscribers:
            r = await run(n, args.rate, args.moves, server, settings, db)
            print(json.dumps(r))
            results.append(r)
    finally:
        await db.dispose()
        server.stop()
        if servers is not None:
            servers.stop()
    report = json.dumps({"command": " ".join(sys.argv), "results": results}, indent=2)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report + "\n")  # noqa: ASYNC240
    print(f"wrote {out}")
    if any(r["bad_subscribers"] for r in results):
        raise SystemExit("loss or duplication detected")


if __name__ == "__main__":
    asyncio.run(main())
