"""ORM models of tenants, teams, users and API keys (DDL lives in the migrations)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, String, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from saas.db import Base


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)


def _tenant_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True)


class Tenant(Base):
    """A customer company; a global (reference) table keyed by its id."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = _uuid_pk()
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str]
    base_currency: Mapped[str] = mapped_column(String(3), default="USD")
    timezone: Mapped[str] = mapped_column(default="UTC")
    sender_email: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Team(Base):
    """A group of reps with a manager."""

    __tablename__ = "teams"

    tenant_id: Mapped[uuid.UUID] = _tenant_pk()
    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class User(Base):
    """A person of a tenant: admin, manager or rep, optionally in a team."""

    __tablename__ = "users"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "team_id"], ["teams.tenant_id", "teams.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = _tenant_pk()
    id: Mapped[uuid.UUID] = _uuid_pk()
    email: Mapped[str]
    name: Mapped[str]
    role: Mapped[str]
    team_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    password_hash: Mapped[str | None]
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ApiKey(Base):
    """A partner app's key: only its hash is stored; the secret is shown once."""

    __tablename__ = "api_keys"

    tenant_id: Mapped[uuid.UUID] = _tenant_pk()
    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str]
    secret_hash: Mapped[str]
    scope: Mapped[str]
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
