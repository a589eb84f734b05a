"""What a new tenant starts with, created in the same transaction as the tenant."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from saas.db import UnitOfWork
from saas.pipelines import service as pipelines
from saas.pipelines.templates import DEFAULT_SEGMENT
from tenants.principal import Principal, Role


async def provision_defaults(*, uow: UnitOfWork, tenant_id: uuid.UUID) -> None:
    """The tenant's event counter and its default segment with the default stage set."""
    await uow.session.execute(
        text("INSERT INTO tenant_counters (tenant_id) VALUES (:t)"), {"t": tenant_id})
    system = Principal(tenant_id=tenant_id, role=Role.ADMIN)
    await pipelines.create_segment(uow=uow, principal=system, name=DEFAULT_SEGMENT, stages=None)
