"""The webhook event types, what each log row is called, and which endpoints want it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

DEAL_TYPES = ("deal.created", "deal.moved", "deal.won", "deal.lost", "deal.reopened",
              "deal.transferred", "deal.updated", "deal.deleted", "deal.restored")
ENTITY_TYPES = ("contact.created", "contact.updated", "contact.deleted", "company.created",
                "company.updated", "company.deleted", "forecast.completed", "import.completed",
                "webhook.disabled")
EVENT_TYPES = DEAL_TYPES + ENTITY_TYPES
# What an endpoint may subscribe to: a type, a family (`deal.*`), or everything (`*`).
PATTERNS = frozenset({"*", *EVENT_TYPES, *{t.split(".")[0] + ".*" for t in EVENT_TYPES}})
MAX_PATTERNS = 50


def stage_event_type(kind: str, from_kind: str | None, to_kind: str | None) -> str:
    """The webhook type of a stage event: a move into a won stage is `deal.won`, out of a
    won or lost stage into an open one `deal.reopened`; other moves `deal.moved`."""
    if kind == "created":
        return "deal.created"
    if kind in ("moved", "reopened", "lost"):
        if to_kind == "won":
            return "deal.won"
        if to_kind == "lost":
            return "deal.lost"
        if from_kind in ("won", "lost"):
            return "deal.reopened"
        return "deal.moved"
    if kind in ("transferred", "updated", "deleted", "restored"):
        return f"deal.{kind}"
    return f"deal.{kind}"


def check_patterns(patterns: Iterable[str]) -> list[str]:
    """Normalised subscription patterns; ValueError names an unknown one."""
    result = sorted({p.strip() for p in patterns if p.strip()})
    if not result:
        raise ValueError("choose at least one event type (or '*')")
    if len(result) > MAX_PATTERNS:
        raise ValueError(f"at most {MAX_PATTERNS} event types")
    for pattern in result:
        if pattern not in PATTERNS:
            raise ValueError(f"unknown event type {pattern!r}")
    return result


def wants(patterns: Sequence[str], event_type: str) -> bool:
    if "*" in patterns or event_type in patterns:
        return True
    return f"{event_type.split('.')[0]}.*" in patterns
