"""The websocket side of the edge: each socket's message rate, and subscribe messages checked
like HTTP requests (document, operation, variables) with an `error` message that says why.

Refusals say why too: a handshake from an origin not in ALLOWED_ORIGINS gets HTTP 403 with
a JSON error body (Strawberry's bare close gives an empty 403), and a `connection_init`
whose credentials fail closes with 4403 and the authenticator's message ("the access token
has expired; ...") instead of Strawberry's "Forbidden".

Frame size is bounded by the server (`WS_MAX_MESSAGE_BYTES`, uvicorn's `ws_max_size`).
"""

from __future__ import annotations

import time
from typing import Any, cast

from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message

from schema.context import Context
from schema.cost import Cost, estimate, fragments_of
from schema.edge import media, variables
from schema.edge.documents import DocumentErrors
from schema.edge.http import KIND_CODES, cost_error
from schema.live.transport import LiveTransportWSHandler

TOO_MANY = 4429
REFUSED = 4403
MAX_REASON_BYTES = 123  # a close frame's payload is at most 125 bytes, 2 of them the code
ORIGIN_REFUSED = ("origin not allowed: pages of another origin connect only when it is "
                  "listed in ALLOWED_ORIGINS")


async def refuse_origin(websocket: WebSocket) -> WebSocket:
    """Answer a handshake from an origin not allowed: 403 with the reason as a JSON error
    (the denial-response extension; a bare close, also a 403, where the server lacks it)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(Response(
            media.error_body(ORIGIN_REFUSED, "FORBIDDEN"), status_code=403,
            media_type=media.JSON))
    else:
        await websocket.close(code=1008, reason=ORIGIN_REFUSED)
    return websocket


def rejected(context: Context, reason: str) -> ConnectionRejectionError:
    """What on_ws_connect raises to refuse a connection_init: closed with 4403 and `reason`."""
    if isinstance(context.request, WebSocket):
        context.request.state.rejection = reason
    return ConnectionRejectionError({"message": reason})


def close_reason(reason: str) -> str:
    """`reason` cut to what a close frame carries, on a character boundary."""
    return reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")


class EdgeWebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's adapter; its 4403 "Forbidden" for a refused connection_init carries the
    reason `rejected` recorded instead."""

    async def close(self, code: int, reason: str) -> None:
        if code == REFUSED and reason == "Forbidden":
            reason = getattr(self.ws.state, "rejection", None) or reason
        await super().close(code, close_reason(reason))


class Bucket:
    """A token bucket: `rate` messages per second on average, `burst` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class EdgeWSHandler(LiveTransportWSHandler):
    """graphql-transport-ws with the edge's limits in front of Strawberry's handling."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self.context.services.settings
        self.bucket = Bucket(settings.ws_messages_per_second, settings.ws_message_burst)

    async def handle_message(self, message: Message) -> None:
        if not self.bucket.take():
            rate = self.context.services.settings.ws_messages_per_second
            await self.websocket.close(
                TOO_MANY, f"too many messages: at most {rate:g} per second")
            return
        await super().handle_message(message)

    async def handle_subscribe(self, message: Any) -> None:
        payload = message.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            await self.websocket.close(4400, "a subscribe message needs payload.query")
            return
        name = payload.get("operationName")
        values = payload.get("variables")
        if (name is not None and not isinstance(name, str)) or (
                values is not None and not isinstance(values, dict)):
            await self.websocket.close(
                4400, "operationName must be a string and variables an object")
            return
        if not self.connection_acknowledged:  # Strawberry closes it with 4401
            await super().handle_subscribe(message)
            return
        documents = self.view.schema.documents  # type: ignore[attr-defined]
        try:
            document = await documents.prepare_off_loop(payload["query"])
            operation = document.operation(name)
        except DocumentErrors as e:
            await self._refuse(message, [err.formatted | {"extensions": {
                "code": KIND_CODES[e.kind]}} for err in e.errors])
            return
        problems = variables.check(documents.schema, operation, values or {},
                                   hide_suggestions=documents.hide_suggestions)
        if problems:
            await self._refuse(message, [p.formatted for p in problems])
            return
        cost = Cost(estimate(documents.schema, operation, fragments_of(document.node.definitions),
                             values or {}), self.context.services.settings.graphql_max_cost)
        if cost.exceeded:
            error = cost_error(cost)
            await self._refuse(message, [error.formatted | {"extensions": {
                "code": "LIMIT_EXCEEDED", **(error.extensions or {})}}])
            return
        documents.remember(document)  # where Strawberry's parse step finds it (edge.extension)
        await super().handle_subscribe(message)

    async def _refuse(self, message: Any, errors: list[Any]) -> None:
        await self.send_message(cast("Any", {"id": message.get("id"), "type": "error",
                                              "payload": errors}))
