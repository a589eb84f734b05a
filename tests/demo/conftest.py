"""A demo tenant seeded once for the module (seeding takes a few seconds)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from saas.db import Database
from saas.demo import seed
from tenants import service


@dataclass
class Demo:
    tenant_id: uuid.UUID
    slug: str
    summary: seed.DemoSummary


async def seed_tenant(db: Database, *, deals: int = 500, seed_value: int = seed.DEMO_SEED,
                      now: object = None) -> Demo:
    slug = f"demo-{uuid.uuid4().hex[:8]}"
    created = await service.provision_tenant(db=db, name="Demo Company", slug=slug,
                                             admin_email=f"admin@{slug}.example",
                                             admin_password=seed.DEMO_PASSWORD)
    summary = await seed.seed(db=db, admin=service.principal_for_user(created.admin),
                              seed=seed_value, deals=deals, now=now)  # type: ignore[arg-type]
    return Demo(created.tenant.id, slug, summary)


@pytest.fixture(scope="module")
async def demo(db: Database) -> Demo:
    return await seed_tenant(db)
