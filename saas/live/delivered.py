"""What the hub delivers: a log event with its deal's card, and renderings shared per event.

The objects of one read of the log are shared by every subscriber that waited on it, so what
is derived from them (the GraphQL object, its encoded renderings) is built once per process.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from saas.deals.models import StageEvent


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

    __slots__ = ("_render_key", "card", "derived", "event", "frames")

    def __init__(self, event: StageEvent, card: Card | None) -> None:
        self.event = event
        self.card = card
        self.derived: Any = None  # the GraphQL object, set by schema.live.types
        self._render_key: Key | None = None
        # Encoded payloads by selection, for direct writes (schema.live.transport).
        self.frames: dict[Hashable, str] | None = None

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
