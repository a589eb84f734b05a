"""graphql-transport-ws with live events rendered once per selection, not once per subscriber.

Strawberry executes a subscription's selection set for every event and every subscriber,
then JSON-encodes the result per subscriber. For a board with 1,000 watchers that is
1,000 identical executions per move. Here, per process:

- `SharedRenderingExecutor` (schema.live.rendering; the executor of operations run here)
  memoises the execution of a live event's selection in the hub's `RenderCache`, keyed by
  the event (tenant, seq, card value: `Delivered.render_key`) and the *selection*: the
  subscriber's tenant, the operation document and name, and the values of the variables
  the selection itself uses. The root field's arguments (`pipelineId`, `after`, `kinds`)
  only choose which events arrive, so subscribers at different cursors still share.
- `LiveTransportWSHandler` encodes each shared `next` payload once and sends the same
  text to every subscriber of it (only the operation id differs, a cached prefix).
- Direct fan-out: each live operation gets a `DirectWriter` (found by the resolver
  through a context variable). Once its stream has caught up, the hub's fan-out group
  writes each new event's shared frame straight to the operation's websocket
  (`DirectWriter.deliver`; under uvicorn to the socket itself, schema.live.frames), one
  task for all the group's subscribers, instead of waking each subscriber's generator
  and Strawberry's per-result handling. Only error-free
  shared renderings go that way, and only while the write completes at once; anything
  else hands the subscriber back to its own stream (saas.live.stream).

Everything else is unchanged and per subscriber: parsing, validation, authentication,
the pipeline check, replay and gap fill (saas.live.stream), errors, ordering and
completion. A rendering is only shared when the event types have no resolvers and no
field middleware runs (see `shareable_types`); otherwise each subscriber executes as before.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Generator
from typing import Any, cast

from graphql import (
    ExecutionResult as CoreExecutionResult,
)
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message

from saas.live.delivered import Delivered, Key
from saas.live.subscribers import NOT_DELIVERED
from schema.context import Context
from schema.live.frames import RawSocket
from schema.live.rendering import (
    SharedRenderingExecutor,
    encodings,
    fanout_allowed,
    live_schema,
)
from schema.live.rendering import writer as _writer
from schema.live.types import to_graphql

log = logging.getLogger("schema.live")


class _InFlight:
    """The rest of a websocket write that could not finish at once (awaitable once)."""

    __slots__ = ("coro", "yielded")

    def __init__(self, coro: Coroutine[Any, Any, None], yielded: Any) -> None:
        self.coro = coro
        self.yielded = yielded

    def __await__(self) -> Generator[Any, Any, None]:
        coro, to_yield = self.coro, self.yielded
        while True:  # what `yield from coro` does, from where the coroutine stopped
            try:
                sent = yield to_yield
            except BaseException as e:  # forwarded to the coroutine
                try:
                    to_yield = coro.throw(e)
                except (StopIteration, WebSocketDisconnect, OSError):
                    return
            else:
                try:
                    to_yield = coro.send(sent)
                except (StopIteration, WebSocketDisconnect, OSError):
                    # Done, or the client has gone (the handler's read loop ends and
                    # cancels the operation, as when any other send fails).
                    return


def _start(coro: Coroutine[Any, Any, None]) -> _InFlight | None:
    """Run a write until it completes (None) or has to wait (the awaitable rest)."""
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    return _InFlight(coro, yielded)


class DirectWriter:
    """Writes one live operation's events straight to its websocket (saas.live.subscribers.Direct).

    The frame is the one `send_message` would send for the shared rendering: the same
    `next` message with this operation's id. The encoded payload is kept on the event
    (`Delivered.frames`) per selection and view, so the group's other members with the
    same selection only add their operation id. Closed as soon as the operation
    completes or is cancelled, so nothing is written for it afterwards.
    """

    __slots__ = ("closed", "executor", "frame_key", "handler", "operation_id", "prefix", "raw",
                 "ws")

    def __init__(self, handler: LiveTransportWSHandler, operation_id: str,
                 ws: WebSocket, raw: RawSocket | None = None) -> None:
        self.handler = handler
        self.operation_id = operation_id
        self.ws = ws
        self.raw = raw  # the socket itself, when frames can be written to it (schema.live.frames)
        self.executor: SharedRenderingExecutor | None = None
        self.closed = False
        self.frame_key: Key | None = None  # (selection, view), once the executor is known
        self.prefix: str | None = None  # the frame up to the payload

    def deliver(self, item: Delivered) -> Any:
        if self.closed:
            return NOT_DELIVERED
        key = self.frame_key
        frames = item.frames
        body = frames.get(key) if frames is not None and key is not None else None
        if body is None:
            body = self._render(item)
            if body is None:
                return NOT_DELIVERED
        prefix = self.prefix
        if prefix is None:
            prefix = self.prefix = self.handler._prefix(self.operation_id)
            if prefix is None:
                return NOT_DELIVERED
        text = f"{prefix}{body}}}"
        raw = self.raw
        # Not once the app has closed the socket (Starlette's state): uvicorn's close may
        # still be waiting for a paused transport, and nothing may follow it (revocation).
        if (raw is not None and self.ws.application_state is WebSocketState.CONNECTED
                and raw.send_text(text.encode())):
            return None
        try:
            return _start(self.ws.send({"type": "websocket.send", "text": text}))
        except (WebSocketDisconnect, OSError, RuntimeError):
            return NOT_DELIVERED  # the connection is gone; the handler is closing it

    def _render(self, item: Delivered) -> str | None:
        """The event's encoded payload for this selection (None: not a shared rendering)."""
        executor = self.executor
        if executor is None:
            return None
        key = self.frame_key
        if key is None:
            selection = executor._selection_key()
            if selection is None:
                return None
            key = self.frame_key = Key(selection, self.handler.view)
        payload = to_graphql(item)
        result = executor.build_per_event_executor(payload).execute_operation(False)
        if not isinstance(result, CoreExecutionResult):
            if isinstance(result, Coroutine):
                result.close()
            return None  # not synchronous: the usual path executes it
        if result.errors or result.extensions:
            return None  # Strawberry processes errors: the usual path
        body = self.handler._shared_body(result.data)
        if body is not None:
            if item.frames is None:
                item.frames = {}
            item.frames[key] = body
        return body




def direct_writer() -> DirectWriter | None:
    """The running live operation's direct writer; None outside our websocket handler or
    when its renderings cannot be shared (then every event takes the usual path)."""
    writer = _writer.get()
    executor = writer.executor if writer is not None else None
    if (executor is None or executor._selection_key() is None
            or executor._render_cache() is None):
        return None
    return writer


class LiveTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler; shared renderings are encoded once, and
    caught-up live operations are written to directly by the hub's fan-out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema = live_schema(self.schema)
        self._prefixes: dict[str, str] = {}
        self._writers: dict[str, DirectWriter] = {}
        ws = getattr(self.websocket, "ws", None)
        self._direct_ws = ws if isinstance(ws, WebSocket) and fanout_allowed(
            self.schema) else None
        self._raw = RawSocket.of(self._direct_ws.scope) if self._direct_ws is not None else None

    async def handle(self) -> None:
        try:
            await super().handle()
        finally:  # the socket is done: it no longer follows revocation (schema.live.revocation)
            connections = getattr(self.context.services, "connections", None)
            if connections is not None:
                connections.forget(self.context)

    async def handle_message(self, message: Message) -> None:
        connections = getattr(self.context.services, "connections", None)
        if cast("dict[str, Any]", message).get("type") == "refresh" and connections is not None:
            await connections.refresh(self, message)  # a new access token on an open socket
            return
        await super().handle_message(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        ws = self._direct_ws
        if ws is None:
            await super().run_operation(operation)
            return
        writer = self._writers[operation.id] = DirectWriter(self, operation.id, ws, self._raw)
        _writer.set(writer)  # this task's context: the operation's executor and resolver
        try:
            await super().run_operation(operation)
        finally:
            writer.closed = True
            if self._writers.get(operation.id) is writer:
                del self._writers[operation.id]

    async def send_message(self, message: Message) -> None:
        """Every message as a text frame (the protocol's JSON text, even when the view's
        encoder returns bytes); a shared `next` payload is encoded once for everyone."""
        frame = self._shared_frame(message) if message["type"] == "next" else None
        if frame is None:
            frame = _text(self.view.encode_json(message))
        ws = getattr(self.websocket, "ws", None)
        if not isinstance(ws, WebSocket):  # not Starlette: Strawberry's own way
            await super().send_message(message)
            return
        try:
            await ws.send_text(frame)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc

    def _shared_frame(self, message: Any) -> str | None:
        payload = message["payload"]
        if len(payload) != 1:  # errors or extensions: encode as usual
            return None
        body = self._shared_body(payload.get("data"))
        if body is None:
            return None  # not a shared rendering
        prefix = self._prefix(message["id"])
        if prefix is None:
            return None
        return f"{prefix}{body}}}"

    def _shared_body(self, data: Any) -> str | None:
        """`{"data": ...}` of a shared rendering, encoded once per view (None if not one)."""
        entry = encodings.get(id(data))
        if entry is None or entry[0] is not data:
            return None
        if entry[1] is not self.view:
            entry[2] = _text(self.view.encode_json({"data": data}))
            entry[1] = self.view
        return cast("str", entry[2])

    def _prefix(self, operation_id: str) -> str | None:
        """The operation's `next` message up to its payload (cached per operation)."""
        prefix = self._prefixes.get(operation_id)
        if prefix is None:
            template = _text(self.view.encode_json({"id": operation_id, "type": "next",
                                                    "payload": None}))
            if not template.endswith("null}"):
                return None
            prefix = self._prefixes[operation_id] = template[:-5]
        return prefix

    def forget_id(self, id: str) -> None:
        # The operation sends its final message (complete/error): no direct write after it.
        writer = self._writers.pop(id, None)
        if writer is not None:
            writer.closed = True
        super().forget_id(id)

    async def cleanup_operation(self, operation_id: str) -> None:
        writer = self._writers.pop(operation_id, None)
        if writer is not None:
            writer.closed = True  # before the task is cancelled: nothing more is written
        self._prefixes.pop(operation_id, None)
        await super().cleanup_operation(operation_id)


def _text(encoded: str | bytes) -> str:
    return encoded.decode() if isinstance(encoded, bytes) else encoded
