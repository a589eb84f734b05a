"""ORM models of deals, stage events, activities and custom field definitions."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import Text

from saas.db import Base

_UUID = UUID(as_uuid=True)


class Deal(Base):
    __tablename__ = "deals"

    tenant_id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(_UUID)
    stage_id: Mapped[uuid.UUID] = mapped_column(_UUID)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(_UUID)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(_UUID)
    company_id: Mapped[uuid.UUID | None] = mapped_column(_UUID)
    title: Mapped[str]
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str]
    expected_close_date: Mapped[date | None]
    temperature: Mapped[str] = mapped_column(default="warm")
    labels: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    probability_override: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    lost_reason: Mapped[str | None]
    version: Mapped[int] = mapped_column(default=1)
    stage_entered_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    archived_at: Mapped[datetime | None]


class StageEvent(Base):
    __tablename__ = "stage_events"
    # occurred_at comes back in the INSERT's RETURNING: no extra round trip while the
    # transaction holds the tenant's event-counter row (saas/deals/events.py).
    __mapper_args__ = {"eager_defaults": True}

    tenant_id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[uuid.UUID] = mapped_column(_UUID)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(_UUID)
    kind: Mapped[str]
    from_stage_id: Mapped[uuid.UUID | None] = mapped_column(_UUID)
    to_stage_id: Mapped[uuid.UUID | None] = mapped_column(_UUID)
    from_pipeline_id: Mapped[uuid.UUID | None] = mapped_column(_UUID)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(_UUID)
    actor_api_key_id: Mapped[uuid.UUID | None] = mapped_column(_UUID)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str]
    lost_reason: Mapped[str | None]
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Activity(Base):
    __tablename__ = "activities"

    tenant_id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    deal_id: Mapped[uuid.UUID] = mapped_column(_UUID)
    kind: Mapped[str]
    subject: Mapped[str]
    note: Mapped[str | None]
    owner_id: Mapped[uuid.UUID | None] = mapped_column(_UUID)
    due_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CustomFieldDef(Base):
    __tablename__ = "custom_field_defs"

    tenant_id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    key: Mapped[str]
    label: Mapped[str]
    type: Mapped[str]
    choices: Mapped[list[str] | None] = mapped_column(JSONB)
    required: Mapped[bool] = mapped_column(default=False)
    archived_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
