"""Live subscribers of one process: their wake-up queues, and the fan-out groups that write
caught-up subscribers' events directly (saas.live.hub runs both)."""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from saas.live.delivered import Delivered

log = logging.getLogger("saas.live")


class Wakeups:
    """A subscriber's bounded FIFO of wake-ups (sequences), read by its one stream.

    What asyncio.Queue does for this, with less work per put/get: a dispatch wakes every
    subscriber of a board, so this runs once per subscriber per event.
    """

    __slots__ = ("_items", "_waiter", "maxsize")

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._items: collections.deque[int] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, seq: int) -> None:
        if 0 < self.maxsize <= len(self._items):
            raise asyncio.QueueFull
        self._items.append(seq)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> int:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def drain(self) -> list[int]:
        """Everything queued now (possibly nothing)."""
        items = list(self._items)
        self._items.clear()
        return items

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


@dataclass(eq=False)
class Subscriber:
    """One live subscription: its filter and its bounded queue of wake-ups (sequences)."""

    tenant_id: uuid.UUID
    pipeline_id: uuid.UUID | None
    queue: Wakeups
    overflowed: bool = False
    target: str | None = field(init=False)  # the pipeline id as messages carry it
    member: Member | None = field(default=None, init=False)  # while in a fan-out group

    def __post_init__(self) -> None:
        self.target = None if self.pipeline_id is None else str(self.pipeline_id)

    def wants(self, message: dict[str, Any]) -> bool:
        target = self.target
        return (target is None or message.get("pipeline") == target
                or message.get("from_pipeline") == target)

    def notify(self, seq: int) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(seq)
        except asyncio.QueueFull:
            self.overflowed = True
            log.warning("live subscriber overflowed (tenant %s); asking it to resync",
                        self.tenant_id)


NOT_DELIVERED: Any = object()
"""What `Direct.deliver` returns when it did not write an event (the stream must)."""


class Direct(Protocol):
    """Writes a subscriber's events straight to its client (schema.live.transport).

    `deliver` must not block: it returns None once the event is written, an awaitable
    when the write has started but waits for the client (the subscriber has fallen behind
    and must await it before anything else), or NOT_DELIVERED when it wrote nothing
    (the result needs the usual path: errors, no shared rendering, the client has gone).
    """

    def deliver(self, item: Delivered) -> Any: ...


GroupKey = tuple[uuid.UUID, uuid.UUID | None, tuple[str, ...]]


class Member:
    """A caught-up subscriber whose events its group writes directly."""

    __slots__ = ("direct", "group", "last", "returned", "sub")

    def __init__(self, sub: Subscriber, direct: Direct, last: int, group: Group) -> None:
        self.sub = sub
        self.direct = direct
        self.last = last  # the last event written (or being written) to the client
        self.group: Group | None = group
        # Resolved when the group hands the subscriber back to its own stream: with the
        # write still in flight (an awaitable) or None.
        self.returned: asyncio.Future[Any] = asyncio.get_running_loop().create_future()


class Group:
    """Caught-up subscribers of one (tenant, pipeline, kinds): one reader, one writer.

    One task reads the log after `last` when woken and writes each new event to every
    member at once (`Direct.deliver`), instead of waking every member's stream.
    Invariant: every matching event with seq <= `last` has been written to every member
    (members skip events <= their own `last`, so one may join ahead of the group, never
    behind it).
    """

    __slots__ = ("covered", "dirty", "key", "last", "members", "target", "task")

    def __init__(self, key: GroupKey, last: int, covered: int) -> None:
        self.key = key
        self.last = last
        self.covered = covered  # the log has been read up to here (>= last)
        self.target = covered  # the highest sequence we were woken for
        self.dirty = False  # woken since the current read started
        self.members: dict[Member, None] = {}  # insertion order: join order
        self.task: asyncio.Task[None] | None = None
