"""Stall attacks against a running server, with a bystander measuring its latency: a flood of
validation-heavy anonymous documents, and 10 concurrent expensive operations (refused by the
cost limit). The bound is relative to the bystander's own baseline on this shared box."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from tests.factories import TenantFactory
from tests.live.support import ApiServer

ME = {"query": "{ me { tenantId } }"}
FLOOD = [
    "{ " + "me { tenantId } " * 800 + "}",  # quadratic overlap check
    "query { " + "...F0 " * 8 + "}\n" + "\n".join(  # fragments of fragments: 8^30 fields
        f"fragment F{i} on Query {{ me {{ tenantId }} " + (f"...F{i + 1} " * 8 if i < 30 else "")
        + "}" for i in range(31)),
    "{ " + " ".join(f"...F{i}" for i in range(200)) + "}" + "".join(  # pairs of fragments
        f" fragment F{i} on Query {{ me {{ tenantId }} }}" for i in range(200)),
    "{ " + " ".join("... on Query { me { tenantId } }" for _ in range(600)) + " }",
]
EXPENSIVE = "{ " + " ".join(f"a{i}: deals(first: 200) {{ edges {{ node {{ id history {{ seq }} }} }} }}"
                            for i in range(30)) + " }"


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def bystander(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        response = await client.post("/graphql", json=ME, headers=headers)
        out.append(time.perf_counter() - start)
        assert response.status_code == 200 and "errors" not in response.json(), response.text
        await asyncio.sleep(0.01)
    return out


@contextlib.asynccontextmanager
async def attack(url: str, tmp: Path, bodies: list[dict[str, Any]], headers: dict[str, str],
                 clients: int, interval: float) -> AsyncIterator[Counter[str]]:
    """Attackers in their own process while the block runs; yields what they were answered
    (filled in when the block ends)."""
    spec, stop = tmp / "spec.json", tmp / "stop"
    stop.unlink(missing_ok=True)
    spec.write_text(json.dumps({"bodies": bodies, "headers": headers, "clients": clients,
                                "interval": interval}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).parent / "attacker.py"), url, str(spec), str(stop),
        stdout=asyncio.subprocess.PIPE)
    seen: Counter[str] = Counter()
    try:
        await asyncio.sleep(1.5)  # started and under way
        yield seen
    finally:
        stop.touch()
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        seen.update(json.loads(out.decode().strip().splitlines()[-1]))


async def test_a_bystander_is_not_stalled_by_floods_or_expensive_operations(
    tenants: TenantFactory, edge_server: ApiServer, tmp_path: Path,
) -> None:
    t = await tenants.create()
    headers = t.admin_caller.headers

    url = f"{edge_server.http}/graphql"
    async with httpx.AsyncClient(base_url=edge_server.http, timeout=30) as client:
        await bystander(client, headers, 10)  # warm: connection, credentials
        baseline = await bystander(client, headers, 80)
        # 4 anonymous clients, each a heavy document every 50 ms (the stall took 19).
        async with attack(url, tmp_path, [{"query": d} for d in FLOOD], {}, 4, 0.05) as floods:
            flooded = await bystander(client, headers, 80)
        # 10 concurrent copies of the 30-alias deals query, back to back.
        async with attack(url, tmp_path, [{"query": EXPENSIVE}], headers, 10, 0) as refused:
            loaded = await bystander(client, headers, 80)
    # Every flood document and every expensive operation was refused, none was a 5xx.
    assert set(floods) <= {"200 GRAPHQL_PARSE_FAILED", "200 GRAPHQL_VALIDATION_FAILED"}, floods
    assert set(refused) == {"200 LIMIT_EXCEEDED"}, refused
    bound = max(0.1, 3 * p99(baseline))
    figures = {"baseline p99": p99(baseline), "baseline median": statistics.median(baseline),
               "flood p99": p99(flooded), "flood requests": sum(floods.values()),
               "expensive p99": p99(loaded), "expensive refused": sum(refused.values())}
    print(figures)
    assert figures["flood requests"] >= 40 and figures["expensive refused"] >= 40, figures
    assert p99(flooded) < bound, figures
    assert p99(loaded) < bound, figures
