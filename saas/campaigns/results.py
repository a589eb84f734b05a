"""What one campaign tick did, for the job's result and the logs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TickResult:
    enrolled: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unconfirmed: int = 0
    stopped: int = 0
    events: int = 0
    details: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}
