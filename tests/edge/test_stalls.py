"""Floods the edge refuses do not stall anyone else: a bystander's p99 stays under 100 ms
during a validation flood and during 10 concurrent operations the cost limit refuses.

Each test measures the bystander (`{ me { tenantId } }`, authenticated, every ~20 ms) in
interleaved quiet and flood rounds against a real server process. The flood comes from its
own process at nice 10 (tests/edge/flood.py): run on this test's event loop, the flooders'
own work showed up in the bystander's latency (CI failed at 142 ms with the login flood).
The bound is the issue's 100 ms; on a box already saturated by others (the quiet rounds'
p99 above 50 ms, where 100 ms cannot be measured) the flood may at most triple the quiet
p99. Each test asserts the flood was real: every flooder was answered, and refusals counted.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.factories import TenantFactory
from tests.live.support import ApiServer

ROOT = Path(__file__).resolve().parents[2]
BOUND, QUIET_CEILING = 0.100, 0.050


async def _flood_started(server: ApiServer, kind: str, clients: int,
                         token: str | None) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "tests.edge.flood", server.http, kind, str(clients)]
    proc = subprocess.Popen([*args, *([token] if token else [])], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
    assert line.strip() == "started", line
    return proc


def _flood_stopped(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return int(out.split()[-1])


async def _bystander(c: httpx.AsyncClient, headers: dict[str, str], tenant_id: str,
                     seconds: float) -> list[float]:
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        r = await c.post("/graphql", json={"query": "{ me { tenantId } }"}, headers=headers)
        latencies.append(time.perf_counter() - start)
        assert r.status_code == 200 and r.json()["data"] == {"me": {"tenantId": tenant_id}}
        await asyncio.sleep(0.02)
    return latencies


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def _rounds(server: ApiServer, tenants: TenantFactory, kind: str, clients: int,
                  flood_token: str | None) -> tuple[list[float], list[float], int]:
    t = await tenants.create()
    headers = t.admin_caller.headers
    quiet: list[float] = []
    flooded: list[float] = []
    refused = 0
    # The bystander's own garbage collections are not the server's stalls: late in a full
    # run the test process holds enough objects for a full collection to take tens of ms,
    # which landed in the measured latencies (a flood test failed at 130-150 ms in full runs
    # and passed alone at 50-90 ms). Collect once, then measure with the collector off.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        async with httpx.AsyncClient(base_url=server.http, timeout=30) as c:
            await _bystander(c, headers, str(t.id), 0.5)  # warm
            for _ in range(4):
                quiet += await _bystander(c, headers, str(t.id), 2)
                flood = await _flood_started(server, kind, clients, flood_token)
                try:
                    flooded += await _bystander(c, headers, str(t.id), 2.5)
                finally:
                    refused += _flood_stopped(flood)
    finally:
        gc.enable()
        gc.unfreeze()
    print(f"{kind} flood ({clients} clients): bystander p99 quiet {p99(quiet) * 1000:.1f} ms "
          f"(n={len(quiet)}), flooded {p99(flooded) * 1000:.1f} ms (n={len(flooded)}, p50 "
          f"{statistics.median(flooded) * 1000:.1f} ms, max {max(flooded) * 1000:.1f} ms); "
          f"{refused} documents refused")
    return quiet, flooded, refused


def _bound(quiet: list[float]) -> float:
    return BOUND if p99(quiet) <= QUIET_CEILING else max(BOUND, 3 * p99(quiet))


async def test_a_validation_flood_does_not_stall_a_bystander(
    tenants: TenantFactory, edge_server: ApiServer,
) -> None:
    """8 anonymous clients, each document distinct and refused: 30 aliases of one field,
    12 fragments, 40 unknown fields with suggestions, a field repeated 30 times, and a body
    of nearly 1 MiB that is a comment around an unknown field."""
    quiet, flooded, refused = await _rounds(edge_server, tenants, "validation", 8, None)
    assert refused >= 4 * 8  # every flooder was answered in every round: the flood was real
    assert p99(flooded) < _bound(quiet)


async def test_ten_concurrent_operations_over_the_cost_limit_do_not_stall_a_bystander(
    tenants: TenantFactory, edge_server: ApiServer,
) -> None:
    """10 authenticated clients posting the issue's 30-alias `deals(first: 200)` pages with
    nested history (cost 126,030, limit 20,000), each document distinct so that each is
    parsed and validated, none executed."""
    t = await tenants.create()
    token = t.admin_caller.headers["Authorization"].removeprefix("Bearer ")
    quiet, flooded, refused = await _rounds(edge_server, tenants, "cost", 10, token)
    assert refused >= 4 * 10
    assert p99(flooded) < _bound(quiet)
