"""ORM models of campaigns, their steps, enrollments and sends (DDL: migration 0005)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import Text

from saas.db import Base

_UUID = UUID(as_uuid=True)


class Campaign(Base):
    __tablename__ = "campaigns"

    tenant_id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    name: Mapped[str]
    trigger: Mapped[str]
    trigger_days: Mapped[int | None]
    recipient: Mapped[str]
    status: Mapped[str] = mapped_column(default="active")
    segment_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(_UUID), default=list)
    pipeline_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(_UUID), default=list)
    stage_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(_UUID), default=list)
    labels: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    temperatures: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    version: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[uuid.UUID | None] = mapped_column(_UUID)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CampaignStep(Base):
    __tablename__ = "campaign_steps"

    tenant_id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    delay_minutes: Mapped[int]
    subject: Mapped[str]
    body: Mapped[str]


class Enrollment(Base):
    __tablename__ = "campaign_enrollments"

    tenant_id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(_UUID)
    deal_id: Mapped[uuid.UUID] = mapped_column(_UUID)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(_UUID)
    trigger_key: Mapped[str]
    trigger_seq: Mapped[int | None]
    stage_id: Mapped[uuid.UUID | None] = mapped_column(_UUID)
    anchor_at: Mapped[datetime]
    status: Mapped[str]
    stop_reason: Mapped[str | None]
    next_step: Mapped[int]
    next_due_at: Mapped[datetime | None]
    enrolled_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    converted_seq: Mapped[int | None]
    converted_at: Mapped[datetime | None]


class Send(Base):
    __tablename__ = "campaign_sends"

    tenant_id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(_UUID, primary_key=True)
    enrollment_id: Mapped[uuid.UUID] = mapped_column(_UUID)
    step: Mapped[int]
    campaign_id: Mapped[uuid.UUID] = mapped_column(_UUID)
    deal_id: Mapped[uuid.UUID] = mapped_column(_UUID)
    status: Mapped[str]
    recipient: Mapped[str]
    sender: Mapped[str]
    subject: Mapped[str]
    body: Mapped[str]
    message_id: Mapped[str]
    unsubscribe_url: Mapped[str | None]
    attempts: Mapped[int]
    error: Mapped[str | None]
    claimed_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
