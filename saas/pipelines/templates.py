"""Stage sets a new segment can start from."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class StageSpec:
    name: str
    kind: str  # open / won / lost
    probability: Decimal
    rotting_days: int | None = None


# The default funnel of DOMAIN.md: seven stages plus Lost. Closing is the win; Retention
# follows it (repeat sales), so both are `won` and forecasting treats them as one outcome.
DEFAULT_STAGES: tuple[StageSpec, ...] = (
    StageSpec("Lead generation", "open", Decimal("0.05"), 14),
    StageSpec("Lead qualification", "open", Decimal("0.10"), 14),
    StageSpec("Needs analysis", "open", Decimal("0.20"), 21),
    StageSpec("Proposal", "open", Decimal("0.40"), 21),
    StageSpec("Negotiation", "open", Decimal("0.60"), 14),
    StageSpec("Closing", "won", Decimal("1")),
    StageSpec("Retention", "won", Decimal("1")),
    StageSpec("Lost", "lost", Decimal("0")),
)

DEFAULT_SEGMENT = "Default"
