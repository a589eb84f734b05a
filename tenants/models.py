"""ORM models of tenants, teams, users and API keys (DDL lives in the migrations)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKeyConstraint, String, func
from sqlalchemy.dialects.postgresql import ARRAY, UUID
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
    auth_epoch: Mapped[int] = mapped_column(default=1)
    deactivated_at: Mapped[datetime | None]
    password_changed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ApiKey(Base):
    """A partner app's key: only its hash is stored; the secret is shown once."""

    __tablename__ = "api_keys"

    tenant_id: Mapped[uuid.UUID] = _tenant_pk()
    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str]
    secret_hash: Mapped[str]
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String))
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_by_api_key: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    last_used_address: Mapped[str | None]
    rotated_at: Mapped[datetime | None]
    previous_secret_hash: Mapped[str | None]
    previous_expires_at: Mapped[datetime | None]


class AuthSession(Base):
    """A login: its refresh tokens rotate on every use; revoking it ends its access tokens."""

    __tablename__ = "auth_sessions"

    tenant_id: Mapped[uuid.UUID] = _tenant_pk()
    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    last_refreshed_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None]
    address: Mapped[str | None]
    user_agent: Mapped[str | None]
