"""A flood of documents the edge refuses, from its own process, for tests/edge/test_stalls.py.

    python -m tests.edge.flood URL KIND CLIENTS [TOKEN]

KIND `validation`: CLIENTS anonymous loops post validation-heavy documents under the
anonymous token limit, each one distinct (aliases, fragments, unknown fields with
suggestions, repeats, a near-1 MiB body that is mostly a comment), all refused.
KIND `cost`: CLIENTS loops authenticated with TOKEN post 30-alias `deals` pages with nested
history, each document distinct (so each is parsed and validated), all refused by the cost
limit. The process prints `started` once every client had an answer and, on SIGTERM, the
number of refusals it received. It runs apart from the test (and at nice 10) because on a
small box a load generator sharing the measuring process's event loop and CPU shows up in
the bystander's latency: in production the flood comes from other machines.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
from collections.abc import Callable

import httpx

ACCEPT = {"accept": "application/graphql-response+json"}
COMMENT_BYTES = 1_000_000  # under MAX_BODY_BYTES (1 MiB) with the JSON around it


def _aliases(n: int) -> str:
    # 30 distinct aliases of one field (the overlap rule compares them) and an unknown one.
    return "{ " + " ".join(f"a{n}x{i}: me {{ tenantId }}" for i in range(30)) + f" nope{n} }}"


def _fragments(n: int) -> str:
    names = [f"F{n}x{i}" for i in range(12)]
    spreads = " ".join(f"...{name}" for name in names)
    defs = " ".join(f"fragment {name} on Query {{ me {{ tenantId }} }}" for name in names)
    return f"{{ {spreads} missing{n} }} {defs}"


def _suggestions(n: int) -> str:
    # Unknown names close to real ones: validation looks for suggestions for each.
    return "{ " + " ".join(f"dealz{n}{i} {{ id }}" for i in range(40)) + " }"


def _repeats(n: int) -> str:
    return "{ " + " ".join("me { tenantId }" for _ in range(30)) + f" # {n}\n}}"


def _comment(n: int) -> str:
    return f"# {n} " + "x" * COMMENT_BYTES + "\n{ nope }"


VALIDATION: list[Callable[[int], str]] = [_aliases, _fragments, _suggestions, _repeats,
                                          _comment]
REFUSED = {"validation": {"GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED"},
           "cost": {"LIMIT_EXCEEDED"}}


def _cost(n: int) -> str:
    return "{ " + " ".join(
        f"a{n}x{i}: deals(first: 200) {{ edges {{ node {{ id history {{ seq }} }} }} }}"
        for i in range(30)) + " }"


async def main(url: str, kind: str, clients: int, token: str | None) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    headers = {**ACCEPT, **({"authorization": f"Bearer {token}"} if token else {})}
    counter = itertools.count()
    refused = 0
    answered: set[int] = set()
    everyone = asyncio.Event()

    def document() -> str:
        n = next(counter)
        if kind == "cost":
            return _cost(n)
        return VALIDATION[n % len(VALIDATION)](n)

    async def client(me: int) -> None:
        nonlocal refused
        async with httpx.AsyncClient(base_url=url, timeout=120, headers=headers) as c:
            while not stop.is_set():
                response = await c.post("/graphql", json={"query": document()})
                body = response.json()
                code = body["errors"][0]["extensions"]["code"]
                assert response.status_code == 400 and "data" not in body, body
                assert code in REFUSED[kind], body
                refused += 1
                answered.add(me)
                if len(answered) == clients and not everyone.is_set():
                    everyone.set()
                    print("started", flush=True)

    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    await stop.wait()
    await asyncio.gather(*tasks)
    print(refused, flush=True)


if __name__ == "__main__":
    os.nice(10)
    url, kind, clients = sys.argv[1:4]
    asyncio.run(main(url, kind, int(clients), sys.argv[4] if len(sys.argv) > 4 else None))
