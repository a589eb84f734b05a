"""The one way mutations turn domain errors into typed payload errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry

from saas.errors import DomainError, Unauthenticated
from schema.errors import UserError, user_error

P = TypeVar("P")


async def payload(cls: Callable[..., P], action: Callable[[], Awaitable[P]]) -> P:
    """Run `action`; an expected failure becomes `cls(errors=[...])` (nothing was committed:
    the unit of work rolled back when the error left it). Missing credentials stay a
    top-level UNAUTHENTICATED error, like for queries."""
    try:
        return await action()
    except Unauthenticated:
        raise
    except DomainError as e:
        kwargs: dict[str, Any] = {"errors": [user_error(e)]}
        return cls(**kwargs)


@strawberry.type(description="What a delete mutation removed (null when it failed).")
class DeletedPayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)
