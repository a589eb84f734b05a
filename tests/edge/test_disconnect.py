"""A request whose client goes away stops: its statement is cancelled and its connection is
back in the pool within a second, and the process's CPU returns to idle (a real server, a
real socket; a request waiting on a lock, and one keeping the server busy in Python)."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from pathlib import Path

import asyncpg
import httpx

from tests.campaigns.support import raw
from tests.deals.ops import CREATE_DEAL, default_pipeline
from tests.factories import TenantFactory
from tests.live.support import ApiServer, metric

UPDATE = """mutation($input: UpdateDealInput!) { updateDeal(input: $input) {
  deal { id title } errors { code } } }"""
WAITING = """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
  AND usename = 'saas_app' AND state = 'active' AND wait_event_type = 'Lock'"""
IDLE_CPU = 0.2  # CPU seconds per second the server may use once the client has gone


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (/proc/<pid>/stat fields 14 and 15), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cpu_rate(pid: int, seconds: float) -> float:
    """The process's CPU seconds per second over the next `seconds`."""
    before, start = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - start)


async def cpu_returned(pid: int, since: float, *, watch: float = 3.0,
                       step: float = 0.1) -> tuple[float, list[float]]:
    """Seconds from `since` (monotonic) until the process stayed under IDLE_CPU in every
    `step` window for a whole second, and each window's CPU rate (ticks are 10 ms)."""
    samples = [(time.monotonic(), cpu_seconds(pid))]
    while samples[-1][0] - since < watch:
        await asyncio.sleep(step)
        samples.append((time.monotonic(), cpu_seconds(pid)))
    rates = [(c1 - c0) / (t1 - t0) for (t0, c0), (t1, c1) in itertools.pairwise(samples)]
    per_second = round(1 / step)
    for i in range(len(rates) - per_second + 1):
        if all(rate < IDLE_CPU for rate in rates[i:i + per_second]):
            return samples[i][0] - since, rates
    return float("inf"), rates


async def test_a_gone_client_s_statement_is_cancelled_within_a_second(
    tenants: TenantFactory, edge_server: ApiServer, owner_conn: asyncpg.Connection,
    owner_url: str,
) -> None:
    t = await tenants.create()
    caller = t.admin_caller
    pipeline = await default_pipeline(caller)
    deal = (await caller.ok(CREATE_DEAL, input={"pipelineId": pipeline["id"], "title": "locked"}))
    deal_id = deal["createDeal"]["deal"]["id"]
    locker = await asyncpg.connect(owner_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        lock = locker.transaction()
        await lock.start()
        await locker.execute("SELECT 1 FROM deals WHERE id = $1 FOR UPDATE", raw(deal_id))
        async with httpx.AsyncClient(base_url=edge_server.http, timeout=30) as client:
            request = asyncio.create_task(client.post("/graphql", headers=caller.headers, json={
                "query": UPDATE,
                "variables": {"input": {"dealId": deal_id, "expectedVersion": 1, "title": "x"}}}))
            deadline = time.monotonic() + 10
            while await owner_conn.fetchval(WAITING) == 0:  # the update waits on our lock
                assert time.monotonic() < deadline, "the update never reached the lock"
                await asyncio.sleep(0.05)
            request.cancel()  # the client goes away: httpx closes the connection
            gone = time.monotonic()
            while await owner_conn.fetchval(WAITING) > 0:  # noqa: ASYNC110 (polls PostgreSQL)
                await asyncio.sleep(0.02)
            stopped = time.monotonic() - gone
            assert edge_server.proc is not None
            after = await cpu_rate(edge_server.proc.pid, 1.0)
        assert stopped < 1.0, f"the statement ran on {stopped:.2f} s after the client left"
        assert after < IDLE_CPU, f"{after:.2f} CPU s/s in the second after the client left"
        await lock.rollback()
    finally:
        await locker.close()
    # Nothing was written, and the server goes on answering.
    again = await caller.ok("query($id: ID!) { node(id: $id) { ... on Deal { title version } } }",
                            id=deal_id)
    assert again["node"] == {"title": "locked", "version": 1}




# Fields only resolvers answer (not the compiled read): 30 pages of 200 deals with their win
# probabilities cost 12,030 objects, under the 20,000 limit, and keep the server busy in
# Python for seconds (2.1 s of CPU, 2.6 s wall on a 2-core box).
HEAVY = "{ " + " ".join(
    f"a{i}: deals(first: 200) {{ edges {{ node {{ id title winProbability amountInBaseCurrency "
    "expectedCloseMonth winProbabilitySource } } }" for i in range(30)) + " }"
ACTIVE = """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
  AND usename = 'saas_app' AND state <> 'idle'"""


async def test_a_gone_client_s_cpu_heavy_request_stops_within_a_second(
    tenants: TenantFactory, edge_server: ApiServer, owner_conn: asyncpg.Connection,
) -> None:
    """The server is busy in Python (~1 CPU s/s) when the client leaves; within a second its
    CPU is back under 0.2 s/s and stays there, its database backends are idle, and it
    counted the request as gone. Measured: idle again ~0.3 s after the client left -- the
    disconnect is read one (long) loop iteration later, then ~19,000 resolver tasks and the
    in-flight statements are cancelled (~0.2 s of CPU)."""
    t = await tenants.create()
    caller = t.admin_caller
    pipeline = await default_pipeline(caller)
    deal = (await caller.ok(CREATE_DEAL, input={"pipelineId": pipeline["id"], "title": "seed"}))
    columns = ", ".join(r[0] for r in await owner_conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'deals' "
        "AND column_name <> 'id' ORDER BY ordinal_position"))
    await owner_conn.execute(  # 199 copies of the deal: 200 for every page
        f"INSERT INTO deals (id, {columns}) SELECT gen_random_uuid(), {columns} "
        "FROM deals, generate_series(1, 199) WHERE id = $1", raw(deal["createDeal"]["deal"]["id"]))
    assert edge_server.proc is not None
    pid = edge_server.proc.pid
    gone_before = await metric(edge_server.http, "saas_graphql_client_gone_total")
    async with httpx.AsyncClient(base_url=edge_server.http, timeout=60) as client:
        request = asyncio.create_task(client.post("/graphql", headers=caller.headers,
                                                  json={"query": HEAVY}))
        started = cpu_seconds(pid)
        deadline = time.monotonic() + 10
        while cpu_seconds(pid) - started < 0.3:  # the server is at work on it
            assert time.monotonic() < deadline and not request.done()
            await asyncio.sleep(0.02)
        busy = await cpu_rate(pid, 0.3)
        assert not request.done(), "the request finished before the client could leave"
        request.cancel()  # the client goes away: httpx closes the connection
        await asyncio.gather(request, return_exceptions=True)
        returned, rates = await cpu_returned(pid, time.monotonic())
    print(f"server CPU {busy:.2f} s/s while it answered; idle again {returned:.2f} s after the "
          f"client left; per 100 ms: {[round(r, 2) for r in rates[:12]]}")
    assert busy > 0.5  # it was busy in Python, not waiting
    assert returned < 1.0, rates
    assert await owner_conn.fetchval(ACTIVE) == 0
    assert await metric(edge_server.http, "saas_graphql_client_gone_total") == gone_before + 1
    assert (await caller.ok("{ me { tenantId } }"))["me"] == {"tenantId": str(t.id)}
