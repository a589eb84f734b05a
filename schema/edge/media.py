"""GraphQL over HTTP media types: what the client accepts, and answers in that type.

`application/graphql-response+json` (the GraphQL-over-HTTP draft) gets the status the draft
asks for: 400 when the request could not be executed at all (parse, validation, variable
coercion; no `data` key then). `application/json`, for older clients, answers such
requests 200 with the errors, as that draft says for that type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


def negotiate(accept: str | None) -> str | None:
    """The media type to answer in, or None when the client accepts neither of ours."""
    if not accept or not accept.strip():
        return JSON  # the draft: assume application/json when Accept is missing
    best: tuple[float, int, str] | None = None
    for position, item in enumerate(accept.split(",")):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        quality = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        if media == GRAPHQL_RESPONSE:
            chosen = GRAPHQL_RESPONSE
        elif media in (JSON, "application/*", "*/*"):
            chosen = JSON
        else:
            continue
        # Highest quality wins; on a tie the type named exactly and first.
        rank = (quality, -position if media in (GRAPHQL_RESPONSE, JSON) else -1000 - position,
                chosen)
        if best is None or rank[:2] > best[:2]:
            best = rank
    return best[2] if best is not None else None


def encode(payload: Any) -> bytes:
    """orjson, and json for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        import json

        return json.dumps(payload, separators=(",", ":")).encode()


def respond(media: str, status: int, body: bytes,
            headers: Mapping[str, str] | None = None) -> Response:
    return Response(body, status_code=status, headers=dict(headers or {}),
                    media_type=f"{media}; charset=utf-8")


def request_error_status(media: str) -> int:
    """Status of a well-formed request that could not be executed."""
    return 400 if media == GRAPHQL_RESPONSE else 200


def error_body(message: str, code: str, **extensions: Any) -> bytes:
    return encode({"errors": [{"message": message,
                               "extensions": {"code": code, **extensions}}]})
