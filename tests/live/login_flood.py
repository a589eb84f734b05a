"""A login flood from its own process, for tests/live/test_login_limits.py.

    python -m tests.live.login_flood URL TENANT EMAIL CLIENTS ALIASES

CLIENTS loops each post a document of ALIASES aliased `login` fields with a wrong password,
until SIGTERM; the process prints `started` after the first answer and the number of login
attempts answered when it stops. It runs apart from the test (and at nice 10) because on a
small box a load generator sharing the measuring process's event loop and CPU shows up in
the bystander's latency: in production the flood comes from other machines.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import httpx


async def main(url: str, tenant: str, email: str, clients: int, aliases: int) -> None:
    fields = " ".join(f"a{i}: login(input: {{tenant: $t, email: $e, password: $p}}) "
                      "{ token errors { code } }" for i in range(aliases))
    document = {"query": f"mutation($t: String!, $e: String!, $p: String!) {{ {fields} }}",
                "variables": {"t": tenant, "e": email, "p": "wrong-password"}}
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    answered = 0
    first = asyncio.Event()

    async def client() -> None:
        nonlocal answered
        async with httpx.AsyncClient(base_url=url, timeout=120) as c:
            while not stop.is_set():
                body = (await c.post("/graphql", json=document)).json()
                assert "errors" not in body, body
                answered += sum(1 for a in body["data"].values() if not a["token"])
                if not first.is_set():
                    first.set()
                    print("started", flush=True)

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await stop.wait()
    await asyncio.gather(*tasks)
    print(answered, flush=True)


if __name__ == "__main__":
    os.nice(10)
    url, tenant, email, clients, aliases = sys.argv[1:6]
    asyncio.run(main(url, tenant, email, int(clients), int(aliases)))
