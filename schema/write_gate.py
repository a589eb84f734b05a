"""At most half of the connection pool for mutations, so reads are never starved by writes.

The pool has no overflow (saas/settings.py). Writes of one tenant serialise on its event
counter row, and a commit can wait on the disk, so under a steady stream of moves the
waiting mutations could hold every pooled connection and the reads -- which hold a
connection for one or two statements -- would wait for the writers' lock. Mutations take a
slot of this gate before they execute; the other half of the pool stays for everything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType


def write_gate(slots: int) -> Callable[[], SchemaExtension]:
    """A factory of the extension, sharing one semaphore of `slots` (one per schema)."""
    gate = asyncio.Semaphore(max(1, slots))

    class WriteGate(SchemaExtension):
        async def on_execute(self) -> AsyncIterator[None]:
            if self.execution_context.operation_type != OperationType.MUTATION:
                yield
                return
            async with gate:
                yield

    return WriteGate
