"""The rules every stage set keeps, at creation and after every change.

- At least one open, one won and one lost stage: a deal can always start, be won and be
  lost (forecasts and campaigns need all three outcomes).
- Open stages come first, then the won and lost stages (in any order among themselves):
  a board reads left to right as progress, and "advanced to a higher stage" in the
  analytics means a higher open position or a closed outcome.
- `rottingDays` is a positive number of days or null ("never stale"); 0 is refused in every
  mutation with the same message (createSegment, addStage, updateStage,
  setDefaultStageTemplate).
"""

from __future__ import annotations

from collections.abc import Sequence

from saas.errors import Conflict, InvalidStage, ValidationFailed

REQUIRED_KINDS = ("open", "won", "lost")
ROTTING_MESSAGE = "rottingDays is a positive number of days, or null for never stale"


def check_rotting(days: int | None, field: str) -> None:
    if days is not None and days <= 0:
        raise ValidationFailed(ROTTING_MESSAGE, field=field)


def missing_kinds(kinds: Sequence[str]) -> list[str]:
    return [k for k in REQUIRED_KINDS if k not in kinds]


def check_new_set(kinds: Sequence[str], field: str) -> None:
    """A stage set being created (a segment, the default template)."""
    missing = missing_kinds(kinds)
    if missing:
        raise ValidationFailed("a pipeline needs at least one open, one won and one lost "
                               f"stage (missing: {', '.join(missing)})", field=field)
    if not in_order(kinds):
        raise ValidationFailed("open stages come first, then the won and lost stages",
                               field=field)


def check_remaining(kinds: Sequence[str], field: str) -> None:
    """What an archive or delete would leave."""
    missing = missing_kinds(kinds)
    if missing:
        raise Conflict(f"a pipeline must keep at least one {missing[0]} stage", field=field)


def in_order(kinds: Sequence[str]) -> bool:
    seen_closed = False
    for kind in kinds:
        if kind == "open" and seen_closed:
            return False
        seen_closed = seen_closed or kind != "open"
    return True


def check_order(kinds: Sequence[str], field: str) -> None:
    """An order a reorder or an insertion would produce."""
    if not in_order(kinds):
        raise InvalidStage("open stages come first, then the won and lost stages",
                           field=field)
