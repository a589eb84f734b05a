"""The request envelope: `query`, `operationName`, `variables`, `extensions`, checked.

POST takes a JSON body (`application/json`; anything else is 415, which also keeps browsers
from sending it cross-site without a CORS preflight). GET takes URL parameters and is for
queries only (checked once the document is known). Every refusal is a `Refusal` with the
HTTP status and a stable code; nothing here parses GraphQL.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request


class Refusal(Exception):
    """The request is refused before GraphQL: `status`, stable `code`, a clear message."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None, **extensions: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extensions = extensions


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1024 * 1024
    body_read_timeout: float = 10.0
    max_json_depth: int = 32
    max_list_length: int = 1000
    max_string_length: int = 20_000


@dataclass
class Envelope:
    method: str
    query: str | None
    operation_name: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)
    persist_hash: str | None = None  # an APQ hash to keep once the document validated


def bad_request(message: str) -> Refusal:
    return Refusal(400, "BAD_REQUEST", message)


async def read_body(request: Request, limits: Limits) -> bytes:
    """The whole body, at most `max_body_bytes` (413 as soon as it is over, before the rest
    is read), within `body_read_timeout` seconds for all of it (408 for slow clients)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limits.max_body_bytes:
                raise _too_large(limits)
        except ValueError:
            raise bad_request("Content-Length is not a number") from None
    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise _too_large(limits)
            chunks.append(chunk)

    try:
        async with asyncio.timeout(limits.body_read_timeout):
            await collect()
    except TimeoutError:
        raise Refusal(408, "REQUEST_TIMEOUT",
                      f"the request body did not arrive within {limits.body_read_timeout:g} s",
                      headers={"Connection": "close"}) from None
    except ClientDisconnect:
        raise Refusal(400, "BAD_REQUEST", "the client went away") from None
    return b"".join(chunks)


def _too_large(limits: Limits) -> Refusal:
    return Refusal(413, "REQUEST_TOO_LARGE",
                   f"the request body is larger than {limits.max_body_bytes} bytes",
                   headers={"Connection": "close"}, limit=limits.max_body_bytes)


async def from_request(request: Request, limits: Limits) -> Envelope:
    if request.method == "GET":
        return from_params(request, limits)
    if request.method != "POST":
        raise Refusal(405, "METHOD_NOT_ALLOWED", "GraphQL takes GET (queries) and POST",
                      headers={"Allow": "GET, POST"})
    media, _, params = request.headers.get("content-type", "").partition(";")
    media = media.strip().lower()
    if media != "application/json":
        raise Refusal(415, "UNSUPPORTED_MEDIA_TYPE",
                      "send the operation as JSON with 'Content-Type: application/json'")
    charset = _param(params, "charset")
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise Refusal(415, "UNSUPPORTED_MEDIA_TYPE", "the body must be UTF-8")
    body = await read_body(request, limits)
    if not body.strip():
        raise bad_request("the request body is empty: send {\"query\": \"...\"}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("the request body is not valid JSON") from None
    if isinstance(data, list):
        raise bad_request("batched requests are not supported: send one operation per request")
    if not isinstance(data, dict):
        raise bad_request("the request body must be a JSON object")
    check_json(data, limits, "")
    return _envelope("POST", data)


def from_params(request: Request, limits: Limits) -> Envelope:
    params = request.query_params
    data: dict[str, Any] = {}
    for name in ("query", "operationName"):
        if name in params:
            values = params.getlist(name)
            if len(values) != 1:
                raise bad_request(f"'{name}' is given more than once")
            data[name] = values[0] or None
    for name in ("variables", "extensions"):
        if params.get(name):
            try:
                data[name] = orjson.loads(params[name])
            except orjson.JSONDecodeError:
                raise bad_request(f"'{name}' is not valid JSON") from None
    check_json(data, limits, "")
    return _envelope("GET", data)


def _envelope(method: str, data: dict[str, Any]) -> Envelope:
    query = data.get("query")
    if query is not None and not isinstance(query, str):
        raise bad_request("'query' must be a string")
    name = data.get("operationName")
    if name is not None and not isinstance(name, str):
        raise bad_request("'operationName' must be a string or null")
    variables = data.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise bad_request("'variables' must be an object or null")
    extensions = data.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise bad_request("'extensions' must be an object or null")
    return Envelope(method=method, query=query or None, operation_name=name or None,
                    variables=variables or {}, extensions=extensions or {})


def check_json(value: object, limits: Limits, path: str) -> None:
    """Nesting depth, list sizes and NUL characters of the parsed JSON, without recursion."""
    stack: list[tuple[object, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > limits.max_json_depth:
            raise bad_request(f"JSON is nested deeper than {limits.max_json_depth} levels"
                              + (f" at '{where}'" if where else ""))
        if isinstance(item, str):
            if where in ("query", "operationName"):  # the document has its own limits
                continue
            if "\x00" in item:
                raise _input(f"'{_field(where)}' must not contain NUL characters", where)
            if len(item) > limits.max_string_length:
                raise _input(f"'{_field(where)}' is longer than {limits.max_string_length} "
                             "characters", where)
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    raise bad_request("JSON keys must not contain NUL characters")
                stack.append((child, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(item, list):
            if len(item) > limits.max_list_length:
                raise _input(f"'{_field(where)}' has more than {limits.max_list_length} items",
                             where)
            stack.extend((child, f"{where}.{i}", depth + 1) for i, child in enumerate(item))


def _field(where: str) -> str:
    """Input paths as the API names them: a variable's name first (`input.title`)."""
    return where.removeprefix("variables.")


def _input(message: str, where: str) -> Refusal:
    return Refusal(400, "BAD_USER_INPUT", message, field=_field(where))


def _param(params: str, name: str) -> str | None:
    for part in params.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"')
    return None
