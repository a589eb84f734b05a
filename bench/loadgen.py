"""HTTP load: wrk with a Lua script posting one GraphQL body, or an httpx loop without wrk."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import pct

LUA = Path(__file__).resolve().parent / "wrk" / "post.lua"


def have_wrk() -> bool:
    return shutil.which("wrk") is not None and os.environ.get("BENCH_NO_WRK") != "1"


async def run_wrk(url: str, body: bytes, token: str, *, connections: int, seconds: float,
                  threads: int = 2) -> dict[str, Any]:
    env = {**os.environ, "WRK_BODY": body.decode(), "WRK_TOKEN": token}
    proc = await asyncio.create_subprocess_exec(
        "wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        "--latency", "--timeout", "30s", "-s", str(LUA), url, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {err.decode()} {out.decode()}")
    line = next(x for x in out.decode().splitlines() if x.startswith("WRKJSON "))
    raw = json.loads(line[len("WRKJSON "):])
    duration = raw["duration_us"] / 1e6
    errors = sum(v for k, v in raw.items() if k.startswith("errors_"))
    return {
        "tool": "wrk", "connections": connections, "seconds": round(duration, 2),
        "requests": raw["requests"], "rps": round(raw["requests"] / duration, 1),
        "errors": errors,
        "latency_ms": {"p50": raw["p50_us"] / 1000, "p90": raw["p90_us"] / 1000,
                       "p99": raw["p99_us"] / 1000, "max": raw["max_us"] / 1000,
                       "mean": round(raw["mean_us"] / 1000, 3)},
    }


async def run_httpx(url: str, body: bytes, token: str, *, connections: int, seconds: float,
                    max_requests: int | None = None) -> dict[str, Any]:
    """The fallback when wrk is absent: `connections` closed-loop clients on one event loop
    (the client itself costs CPU on the same machine; figures are lower than wrk's)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:
        deadline = time.monotonic() + seconds
        started = time.monotonic()

        async def worker() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                if max_requests is not None and len(latencies) + errors >= max_requests:
                    return
                t = time.monotonic()
                try:
                    r = await client.post(url, content=body)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.monotonic() - t)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        duration = time.monotonic() - started
    ms = [x * 1000 for x in latencies]
    return {
        "tool": "httpx", "connections": connections, "seconds": round(duration, 2),
        "requests": len(latencies), "rps": round(len(latencies) / duration, 1),
        "errors": errors,
        "latency_ms": {"p50": round(pct(ms, 50), 3), "p90": round(pct(ms, 90), 3),
                       "p99": round(pct(ms, 99), 3), "max": round(max(ms), 3) if ms else None,
                       "mean": round(sum(ms) / len(ms), 3) if ms else None},
    }


async def run_load(url: str, body: bytes, token: str, *, connections: int, seconds: float,
                   max_requests: int | None = None) -> dict[str, Any]:
    if have_wrk():
        return await run_wrk(url, body, token, connections=connections, seconds=seconds)
    return await run_httpx(url, body, token, connections=connections, seconds=seconds,
                           max_requests=max_requests)
