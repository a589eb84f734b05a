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
import contextlib
import contextvars
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter

from saas.db import Database
from saas.live.delivered import Batch, RenderCache
from saas.live.reads import read_after
from saas.live.subscribers import (
    NOT_DELIVERED,
    Direct,
    Group,
    GroupKey,
    Member,
    Subscriber,
    Wakeups,
)
from saas.observability.metrics import EVENTS_FANNED_OUT, LIVE_WAKEUPS, WS_SUBSCRIPTIONS

log = logging.getLogger("saas.live")

CATCH_UP = -1  # a wake-up without a sequence: read whatever is new

DIRECT_WRITES = Counter("saas_live_direct_writes_total",
                        "Live events written by a fan-out group straight to a websocket")
HANDBACKS = Counter("saas_live_handbacks_total",
                    "Subscribers a fan-out group handed back to their own stream",
                    ["reason"])  # behind | usual_path | read_failed | stopping



FetchKey = tuple[uuid.UUID, uuid.UUID | None, int, tuple[str, ...]]


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
    _groups: dict[uuid.UUID, dict[GroupKey, Group]] = field(default_factory=dict)
    # Receivers of control messages ({"control": ...}: auth changes, tenants/authcache.py)
    # on this same channel; a reconnect sends them {"control": "reset"}.
    listeners: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)

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
        for groups in list(self._groups.values()):
            for group in list(groups.values()):
                if group.task is not None:
                    group.task.cancel()
                for member in list(group.members):
                    self._hand_back(member, None, "stopping")
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
        if sub.member is not None:
            self.leave(sub.member)
        subs = self._subs.get(sub.tenant_id)
        if subs is not None and sub in subs:
            WS_SUBSCRIPTIONS.dec()
            subs.discard(sub)
            if not subs:
                del self._subs[sub.tenant_id]

    @property
    def subscriber_count(self) -> int:
        return (sum(len(s) for s in self._subs.values())
                + sum(len(g.members) for gs in self._groups.values() for g in gs.values()))

    # -- direct fan-out ------------------------------------------------------------------
    def join(self, sub: Subscriber, direct: Direct, last: int, covered: int,
             kinds: Sequence[str] | None) -> Member | None:
        """Hand a caught-up subscriber (every event <= `last` delivered) to its group.

        None when the group is already past `last` (the stream must read the log up to
        it first) or the subscriber overflowed. The subscriber's pending wake-ups go to
        the group; from now on the group writes its events until it hands it back.
        """
        if sub.overflowed or sub.member is not None:
            return None
        key: GroupKey = (sub.tenant_id, sub.pipeline_id, tuple(sorted(kinds or ())))
        groups = self._groups.setdefault(sub.tenant_id, {})
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(key, last, max(covered, last))
        elif last < group.last:
            if not group.members and group.task is None:  # an idle, empty group
                group = groups[key] = Group(key, last, max(covered, last))
            else:
                return None
        wakes = sub.queue.drain()
        subs = self._subs.get(sub.tenant_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.tenant_id]
        member = sub.member = Member(sub, direct, last, group)
        group.members[member] = None
        if wakes:
            self._wake(group, CATCH_UP if CATCH_UP in wakes else max(wakes))
        return member

    def leave(self, member: Member) -> None:
        """The member's stream ends (or takes over again): stop writing to it."""
        group = member.group
        if group is None:
            return
        member.group = None
        group.members.pop(member, None)
        sub = member.sub
        sub.member = None
        if not group.members and group.task is None:
            groups = self._groups.get(group.key[0])
            if groups is not None and groups.get(group.key) is group:
                del groups[group.key]
                if not groups:
                    del self._groups[group.key[0]]
        self._subs.setdefault(sub.tenant_id, set()).add(sub)

    def _hand_back(self, member: Member, pending: Any, reason: str) -> None:
        """Back to the member's own stream (which reads the log after `member.last`)."""
        HANDBACKS.labels(reason).inc()
        self.leave(member)
        if not member.returned.done():
            member.returned.set_result(pending)

    def _wake(self, group: Group, seq: int) -> None:
        if seq != CATCH_UP and seq <= group.covered:
            return  # stale or duplicate: that part of the log has been read
        group.target = max(group.target, seq)
        group.dirty = True
        if group.task is None and group.members:
            # A context of its own: not the request (or listener) that happened to wake it.
            group.task = asyncio.get_running_loop().create_task(
                self._run_group(group), name="live-fan-out", context=contextvars.Context())

    async def _run_group(self, group: Group) -> None:
        tenant, pipeline, kinds = group.key
        try:
            while group.dirty and group.members:
                group.dirty = False
                aim = group.target
                while True:  # read the log after the group's last event until exhausted
                    batch = await self.fetch(tenant, pipeline, group.last, kinds or None)
                    self._fan_out(group, batch)
                    if len(batch.events) < self.page_size:
                        break
                group.covered = max(group.covered, aim, group.last)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # The members' own streams read the log again (and report errors as before).
            log.warning("live: fan-out read failed (%s: %s); handing back %d subscribers",
                        type(e).__name__, e, len(group.members))
            for member in list(group.members):
                self._hand_back(member, None, "read_failed")
        finally:
            group.task = None
            if not group.members:
                groups = self._groups.get(tenant)
                if groups is not None and groups.get(group.key) is group:
                    del groups[group.key]
                    if not groups:
                        del self._groups[tenant]

    def _fan_out(self, group: Group, batch: Batch) -> None:
        """Write each new event of a read to every member (synchronously, in order)."""
        tenant = group.key[0]
        written = 0
        for item in batch.delivered:
            event = item.event
            if event.tenant_id != tenant:  # RLS guarantees it; check anyway
                log.error("live: dropped another tenant's event (seq %s)", event.seq)
                continue
            seq = event.seq
            if seq <= group.last:
                continue
            group.last = seq
            for member in tuple(group.members):
                if seq <= member.last:
                    continue
                outcome = member.direct.deliver(item)
                if outcome is None:
                    member.last = seq
                    written += 1
                elif outcome is NOT_DELIVERED:
                    self._hand_back(member, None, "usual_path")
                else:  # written in part: the client is behind, its stream waits for it
                    member.last = seq
                    written += 1
                    self._hand_back(member, outcome, "behind")
        if written:
            EVENTS_FANNED_OUT.inc(written)
            DIRECT_WRITES.inc(written)

    def dispatch(self, message: dict[str, Any]) -> None:
        """Fan one message out to this process's subscribers of its tenant (and pipeline)."""
        if "control" in message:
            for listener in self.listeners:
                listener(message)
            return
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
        for group in tuple(self._groups.get(tenant, {}).values()):
            wanted = group.key[1]
            if (wanted is None or str(wanted) == pipeline
                    or str(wanted) == from_pipeline):
                woken += 1
                self._wake(group, seq)
        if woken:
            LIVE_WAKEUPS.inc(woken)

    def catch_up_all(self) -> None:
        for listener in self.listeners:
            listener({"control": "reset"})
        for subs in self._subs.values():
            for sub in tuple(subs):
                sub.notify(CATCH_UP)
        for groups in tuple(self._groups.values()):
            for group in tuple(groups.values()):
                self._wake(group, CATCH_UP)

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
        return await read_after(self.db, tenant_id, pipeline_id, after_seq, kinds,
                                limit=self.page_size)

Publisher = Callable[[list[dict[str, object]]], Awaitable[None]]
