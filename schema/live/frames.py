"""Live frames written straight to the client's socket, past the ASGI send chain.

A caught-up subscriber's event is one text frame (schema.live.transport.DirectWriter). Sent
through Starlette's `WebSocket.send`, each frame also went through every middleware's
`send` wrapper and uvicorn's ASGI `send` coroutine before websockets framed it: at 1,000
subscribers per move that plumbing was most of the API's cost per delivery above the
websocket floor's (bench/README.md, "Live"). When the server is uvicorn's
`websockets-sansio` protocol (saas.cli), `RawSocket` frames the text with websockets'
own `Frame` and writes it to the protocol's transport at once, but only while uvicorn
would have written it at once too: the handshake done, nothing closing or closed, the
transport not paused (a slow client's frames still wait through the usual path, in
order), and no extension negotiated. Anything else returns False and the caller sends
the usual way. Frames written here skip the middleware: with tracing on, the OpenTelemetry
middleware makes no `websocket send` span for them (it still does for every other send).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import Counter
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]
RAW_SEND = "saas.raw_send"
SOCKET_WRITES = Counter("saas_live_socket_writes_total",
                        "Live frames of the direct fan-out written to the socket itself")


class RawSend:
    """The outermost middleware: keeps the server's own `send` of a websocket in its scope,
    before any other middleware wraps it (saas.app)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scope[RAW_SEND] = send
        await self.app(scope, receive, send)


class RawSocket:
    """uvicorn's websockets-sansio connection of one websocket, written to directly."""

    __slots__ = ("_conn", "_proto")

    def __init__(self, proto: Any) -> None:
        self._proto = proto
        self._conn = proto.conn

    @classmethod
    def of(cls, scope: Scope) -> RawSocket | None:
        """The connection behind `scope`, or None (not uvicorn's sans-I/O websockets)."""
        proto = getattr(scope.get(RAW_SEND), "__self__", None)
        if not isinstance(proto, WebSocketsSansIOProtocol):
            return None
        return cls(proto)

    def send_text(self, text: bytes) -> bool:
        """Write `text` (UTF-8) as one text frame now; False, having written nothing, when
        uvicorn would not write it at once (then send it the usual way)."""
        proto = self._proto
        transport = proto.transport
        if (proto.disconnected or proto.close_sent or not proto.handshake_complete
                or proto.initial_response is not None or not proto.writable.is_set()
                or self._conn.state is not State.OPEN or self._conn.extensions
                or transport.is_closing()):
            return False
        transport.write(Frame(Opcode.TEXT, text).serialize(mask=False))
        SOCKET_WRITES.inc()
        return True
