"""A webhook receiver in its own process, for bench/partners.py.

    python -m bench.webhook_receiver PORT

POST (any path): records the `webhook-id` header, the deal's title and the wall-clock time
of receipt, answers 204. GET /stats: {"received": n, "distinct": n}. GET /dump: every
receipt as [webhook-id, title, time]. It runs apart from the delivery worker and the load so
that its own work (parsing, recording) does not share their event loop, like a partner's
server on another machine.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import uvicorn

Receipt = tuple[str, str, float]
received: list[Receipt] = []


async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
              send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "POST":
        headers = dict(scope["headers"])
        title = orjson.loads(body).get("data", {}).get("deal", {}).get("title", "")
        received.append((headers.get(b"webhook-id", b"").decode(), title, time.time()))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/stats":
        answer: Any = {"received": len(received), "distinct": len({r[0] for r in received})}
    else:
        answer = received
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": orjson.dumps(answer)})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                lifespan="off", ws="none", access_log=False)
