"""What a new tenant starts with, created in the same transaction as the tenant."""

from __future__ import annotations

import uuid

from saas.db import UnitOfWork


async def provision_defaults(*, uow: UnitOfWork, tenant_id: uuid.UUID) -> None:
    """Create the tenant's defaults (the event counter and the default segment come later)."""
