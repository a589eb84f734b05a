"""The per-process hub: ONE Redis pub/sub connection, in-memory fan-out to subscribers.

Messages are wake-ups, not payloads: a subscriber that hears "tenant T has event seq N"
reads the events it has not delivered yet from PostgreSQL (the durable, gap-free log),
so order and completeness never depend on Redis. Redis only makes delivery prompt:

- publish() runs after commit (Database.publisher); a failed PUBLISH is logged, never
  raised, because the mutation has already committed. Subscribers recover on their next
  wake-up or on the catch-up the hub sends after it reconnects.
- each subscriber has a bounded queue; when it overflows (the client does not read),
  the subscriber is flagged and the stream ends it with a ResyncRequired event.
- if the Redis connection drops, the listener reconnects with backoff and then tells
  every subscriber to catch up from PostgreSQL (messages sent meanwhile were lost).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import select

from saas.db import Database
from saas.deals import events as event_log
from saas.deals.models import Deal, StageEvent
from saas.observability.metrics import LIVE_WAKEUPS, WS_SUBSCRIPTIONS
from tenants.models import User

log = logging.getLogger("saas.live")

CATCH_UP = -1  # a wake-up without a sequence: read whatever is new


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


FetchKey = tuple[uuid.UUID, uuid.UUID | None, int, tuple[str, ...]]


@dataclass(frozen=True)
class Card:
    """A deal's current card fields, for the events that mention it."""

    id: uuid.UUID
    title: str
    amount: Any
    currency: str
    temperature: str
    version: int
    stage_id: uuid.UUID
    pipeline_id: uuid.UUID
    owner_id: uuid.UUID | None
    owner_name: str | None


class Key:
    """A hashable value whose hash is computed once (keys looked up once per subscriber)."""

    __slots__ = ("_hash", "parts")

    def __init__(self, *parts: Hashable) -> None:
        self.parts = parts
        self._hash = hash(parts)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Key) and self._hash == other._hash
                                 and self.parts == other.parts)

    def __repr__(self) -> str:
        return f"Key{self.parts!r}"


class Delivered:
    """One event of the log with its deal's card, as every subscriber of a batch sees it.

    The objects of one read are shared by all the subscribers that waited on it, so what
    is derived from them (the GraphQL object, its renderings) is built once. `render_key`
    is the event's identity for that: tenant, sequence and the card's full value (the card
    is "as it is now", so a later read of the same event may carry a different card and
    then renders separately).
    """

    __slots__ = ("_render_key", "card", "derived", "event")

    def __init__(self, event: StageEvent, card: Card | None) -> None:
        self.event = event
        self.card = card
        self.derived: Any = None  # the GraphQL object, set by schema.live.types
        self._render_key: Key | None = None

    @property
    def render_key(self) -> Key:
        if self._render_key is None:
            self._render_key = Key(self.event.tenant_id, self.event.seq, self.card)
        return self._render_key

    def __repr__(self) -> str:
        return f"Delivered(seq={self.event.seq}, card={self.card!r})"


@dataclass(frozen=True)
class Batch:
    """One page of the log after a cursor, with the cards of the deals it mentions."""

    events: list[StageEvent]
    cards: dict[uuid.UUID, Card]
    delivered: list[Delivered] = field(default_factory=list)  # same order as events


class RenderCache:
    """Renderings of events per (event, selection), shared by the subscribers of a process.

    Bounded, oldest event first out: an event is rendered within moments of being read,
    so a small cache is enough; a miss only means rendering again (the same bytes).
    Values are opaque here (schema.live.transport stores GraphQL results).
    """

    def __init__(self, max_events: int = 1024) -> None:
        self.max_events = max_events
        self._events: dict[Key, dict[Hashable, Any]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, event: Key, selection: Hashable) -> Any:
        renderings = self._events.get(event)
        if renderings is None:
            self.misses += 1
            return None
        found = renderings.get(selection)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, event: Key, selection: Hashable, value: Any) -> None:
        if self.max_events <= 0:
            return
        renderings = self._events.get(event)
        if renderings is None:
            while len(self._events) >= self.max_events:
                del self._events[next(iter(self._events))]
            renderings = self._events[event] = {}
        renderings[selection] = value

    def __len__(self) -> int:
        return len(self._events)


@dataclass(eq=False)
class Hub:
    """Owns the Redis listener task and the subscriber registry of this process."""

    redis_url: str
    channel: str
    db: Database | None = None
    queue_size: int = 1000
    page_size: int = 500
    publish_timeout: float = 1.0
    backoff_max: float = 2.0
    _subs: dict[uuid.UUID, set[Subscriber]] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _publisher: aioredis.Redis | None = None
    render_cache_size: int = 1024
    _inflight: dict[FetchKey, asyncio.Task[Batch]] = field(default_factory=dict)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    reconnects: int = 0
    renderings: RenderCache = field(init=False)

    def __post_init__(self) -> None:
        self.renderings = RenderCache(self.render_cache_size)

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self._publisher = self._client()
        self._task = asyncio.create_task(self._listen(), name="live-hub-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._publisher is not None:
            await self._publisher.aclose()
            self._publisher = None
        for subs in self._subs.values():
            for sub in subs:
                sub.notify(CATCH_UP)

    def _client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(  # type: ignore[no-any-return]
            self.redis_url, socket_connect_timeout=self.publish_timeout,
            socket_timeout=None, health_check_interval=0,
        )

    # -- subscribers -----------------------------------------------------------------
    def subscribe(self, tenant_id: uuid.UUID, pipeline_id: uuid.UUID | None) -> Subscriber:
        sub = Subscriber(tenant_id, pipeline_id, Wakeups(self.queue_size))
        self._subs.setdefault(tenant_id, set()).add(sub)
        WS_SUBSCRIPTIONS.inc()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._subs.get(sub.tenant_id)
        if subs is not None and sub in subs:
            WS_SUBSCRIPTIONS.dec()
            subs.discard(sub)
            if not subs:
                del self._subs[sub.tenant_id]

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def dispatch(self, message: dict[str, Any]) -> None:
        """Fan one message out to this process's subscribers of its tenant (and pipeline)."""
        try:
            tenant = uuid.UUID(str(message["tenant"]))
            seq = int(message["seq"])
        except (KeyError, ValueError, TypeError):
            log.warning("ignoring malformed live message: %r", message)
            return
        pipeline = message.get("pipeline")
        from_pipeline = message.get("from_pipeline")
        woken = 0
        for sub in tuple(self._subs.get(tenant, ())):
            target = sub.target
            if target is None or target == pipeline or target == from_pipeline:
                woken += 1
                sub.notify(seq)
        if woken:
            LIVE_WAKEUPS.inc(woken)

    def catch_up_all(self) -> None:
        for subs in self._subs.values():
            for sub in tuple(subs):
                sub.notify(CATCH_UP)

    # -- publishing (Database.publisher) -----------------------------------------------
    async def publish(self, messages: list[dict[str, object]]) -> None:
        """After commit: wake local subscribers now, and other processes via Redis."""
        for message in messages:
            self.dispatch(message)
        if self._publisher is None:
            return
        try:
            async with asyncio.timeout(self.publish_timeout):
                if len(messages) == 1:
                    await self._publisher.publish(self.channel, json.dumps(messages[0]))
                else:
                    async with self._publisher.pipeline(transaction=False) as pipe:
                        for message in messages:
                            pipe.publish(self.channel, json.dumps(message))
                        await pipe.execute()
        except Exception as e:
            log.warning("live publish failed (%s: %s); subscribers will catch up",
                        type(e).__name__, e)

    # -- the one Redis subscription ----------------------------------------------------
    async def _listen(self) -> None:
        delay = 0.05
        while True:
            client = self._client()
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.connected.set()
                delay = 0.05
                # Whatever was published while we were not listening is lost: catch up.
                self.catch_up_all()
                while True:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is None:
                        continue
                    self._on_raw(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if self.connected.is_set():
                    log.warning("live: Redis subscription lost (%s: %s); reconnecting",
                                type(e).__name__, e)
                self.connected.clear()
                self.reconnects += 1
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.backoff_max)

    def _on_raw(self, data: Any) -> None:
        try:
            message = json.loads(data)
        except (TypeError, ValueError):
            log.warning("ignoring non-JSON live message")
            return
        if isinstance(message, dict):
            self.dispatch(message)

    # -- coalesced reads from the log --------------------------------------------------
    async def fetch(self, tenant_id: uuid.UUID, pipeline_id: uuid.UUID | None, after_seq: int,
                    kinds: Sequence[str] | None) -> Batch:
        """Events after a cursor under the tenant; concurrent identical reads share one query.

        Many subscribers of one board wake on the same message with the same cursor, so
        only the first of them goes to PostgreSQL. Rows are read-only for callers.
        """
        key: FetchKey = (tenant_id, pipeline_id, after_seq, tuple(sorted(kinds or ())))
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._read(tenant_id, pipeline_id, after_seq, kinds))
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
        return await asyncio.shield(task)

    def _done(self, key: FetchKey, task: asyncio.Task[Batch]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: every waiter gets it re-raised from the shield

    async def _read(self, tenant_id: uuid.UUID, pipeline_id: uuid.UUID | None,
                    after_seq: int, kinds: Sequence[str] | None) -> Batch:
        assert self.db is not None
        async with self.db.unit_of_work(tenant_id) as uow:
            rows = await event_log.after(uow, after_seq=after_seq, limit=self.page_size,
                                         pipeline_id=pipeline_id, kinds=kinds)
            cards: dict[uuid.UUID, Card] = {}
            deal_ids = {e.deal_id for e in rows}
            if deal_ids:
                result = await uow.session.execute(
                    select(Deal.id, Deal.title, Deal.amount, Deal.currency, Deal.temperature,
                           Deal.version, Deal.stage_id, Deal.pipeline_id, Deal.owner_id,
                           User.name)
                    .outerjoin(User, (User.tenant_id == Deal.tenant_id)
                               & (User.id == Deal.owner_id))
                    .where(Deal.id.in_(deal_ids)))
                for r in result:
                    cards[r[0]] = Card(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8],
                                       r[9])
        return Batch(rows, cards, [Delivered(e, cards.get(e.deal_id)) for e in rows])


Publisher = Callable[[list[dict[str, object]]], Awaitable[None]]
