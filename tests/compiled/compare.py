"""Comparing two GraphQL answers: key order counts, error order does not."""

from __future__ import annotations

import json
from typing import Any

import httpx


def ordered(body: bytes) -> Any:
    """JSON with objects as lists of pairs, so key order counts in comparisons. The order
    of `errors` is not defined (root fields resolve concurrently), so they are sorted."""
    value = json.loads(body, object_pairs_hook=lambda pairs: ("{}", pairs))
    if isinstance(value, tuple):
        value = ("{}", [(k, sorted(v, key=repr) if k == "errors" else v) for k, v in value[1]])
    return value


def difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two `ordered` values first differ, for a readable failure."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        a, b = a[1], b[1]
        if [k for k, _ in a] != [k for k, _ in b]:
            return f"{path}: keys {[k for k, _ in a]} != {[k for k, _ in b]}"
        for (k, x), (_, y) in zip(a, b, strict=True):
            if (found := difference(x, y, f"{path}.{k}")) is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if (found := difference(x, y, f"{path}[{i}]")) is not None:
                return found
        return None
    return None if a == b and type(a) is type(b) else f"{path}: {a!r} != {b!r}"


async def post(client: httpx.AsyncClient, headers: dict[str, str], query: str,
               variables: dict[str, Any]) -> httpx.Response:
    return await client.post("/graphql", json={"query": query, "variables": variables,
                                               "operationName": "Q"}, headers=headers)
