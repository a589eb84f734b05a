"""An attacker process for tests/edge/test_attacks.py: N concurrent clients posting the
given bodies in a loop (pausing `interval` seconds after each) until the stop file appears; prints the number of requests sent and
the statuses seen (its CPU is not the bystander's)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

import httpx


async def main(url: str, spec_path: str, stop_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    stop = Path(stop_path)
    statuses: Counter[str] = Counter()

    async def client() -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            while not stop.exists():
                for body in spec["bodies"]:
                    response = await http.post(url, json=body, headers=spec["headers"])
                    code = (response.json().get("errors") or [{}])[0].get("extensions", {}).get("code")
                    statuses[f"{response.status_code} {code}"] += 1
                    await asyncio.sleep(spec["interval"])

    await asyncio.gather(*(client() for _ in range(spec["clients"])))
    print(json.dumps(statuses))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
