"""Tenant provisioning, login, teams, users and API keys (keyword-only service functions)."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from saas.db import Database, UnitOfWork
from saas.errors import Conflict, NotFound, Unauthenticated, ValidationFailed
from tenants import audit
from tenants.audit import Action
from tenants.credentials import hash_password, new_api_key, verify_password
from tenants.models import ApiKey, Team, Tenant, User
from tenants.principal import Principal, Role, Scope
from tenants.provisioning import provision_defaults

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

@dataclass(frozen=True)
class ProvisionedTenant:
    tenant: Tenant
    admin: User
    admin_password: str


def validate_email(email: str) -> str:
    email = email.strip()
    if not EMAIL.match(email) or len(email) > 254:
        raise ValidationFailed("not a valid email address", field="email")
    return email


async def provision_tenant(
    *, db: Database, name: str, slug: str | None, admin_email: str, admin_password: str | None
) -> ProvisionedTenant:
    """Create a tenant with its admin user and default pipeline, in one transaction."""
    slug = slug or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63]
    if not SLUG.match(slug):
        raise ValidationFailed("slug must be lowercase letters, digits and dashes", field="slug")
    if not name.strip():
        raise ValidationFailed("name must not be empty", field="name")
    admin_email = validate_email(admin_email)
    password = admin_password or secrets.token_urlsafe(12)
    tenant = Tenant(id=uuid.uuid4(), slug=slug, name=name.strip())
    try:
        async with db.unit_of_work(tenant.id) as uow:
            uow.session.add(tenant)
            await uow.session.flush()
            admin = User(
                tenant_id=tenant.id,
                id=uuid.uuid4(),
                email=admin_email,
                name=admin_email.split("@")[0],
                role=Role.ADMIN.value,
                password_hash=hash_password(password),
            )
            uow.session.add(admin)
            await uow.session.flush()
            await provision_defaults(uow=uow, tenant_id=tenant.id)
    except IntegrityError as e:
        raise Conflict(f"a tenant with slug {slug!r} already exists", field="slug") from e
    return ProvisionedTenant(tenant=tenant, admin=admin, admin_password=password)


async def login(*, db: Database, tenant_slug: str, email: str, password: str) -> Principal:
    """Check a password; the same error for unknown tenant, unknown email and wrong password."""
    async with db.unit_of_work(None) as uow:
        tenant_id = (
            await uow.session.execute(select(Tenant.id).where(Tenant.slug == tenant_slug))
        ).scalar_one_or_none()
    user = None
    if tenant_id is not None:
        async with db.unit_of_work(tenant_id) as uow:
            user = (
                await uow.session.execute(
                    select(User).where(text("lower(email) = lower(:email)")),
                    {"email": email.strip()},
                )
            ).scalar_one_or_none()
    if not verify_password(user.password_hash if user else None, password) or user is None:
        if tenant_id is not None:
            async with db.unit_of_work(tenant_id) as uow:
                await audit.record(uow, None, Action.LOGIN_FAILED,
                                   target=("User", user.id) if user else None,
                                   details={"email": email.strip().lower()})
        raise Unauthenticated("wrong tenant, email or password")
    if not user.is_active:
        raise Unauthenticated("this user is deactivated")
    principal = principal_for_user(user)
    async with db.unit_of_work(user.tenant_id) as uow:
        await audit.record(uow, principal, Action.LOGIN_SUCCEEDED, target=("User", user.id))
    return principal


def principal_for_user(user: User) -> Principal:
    return Principal(
        tenant_id=user.tenant_id,
        user_id=user.id,
        role=Role(user.role),
        team_id=user.team_id,
        scopes=frozenset({Scope.READ, Scope.READ_WRITE}),
    )


async def get_tenant(*, uow: UnitOfWork, tenant_id: uuid.UUID) -> Tenant:
    tenant = await uow.session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant not found")
    return tenant


async def get_user(*, uow: UnitOfWork, user_id: uuid.UUID) -> User:
    """A user of the current tenant (RLS hides the others, so they are 'not found')."""
    assert uow.tenant_id is not None
    user = await uow.session.get(User, (uow.tenant_id, user_id))
    if user is None:
        raise NotFound("user not found", field="userId")
    return user


async def create_team(*, uow: UnitOfWork, principal: Principal, name: str) -> Team:
    principal.require_role(Role.ADMIN)
    if not name.strip() or len(name) > 200:
        raise ValidationFailed("team name must be 1-200 characters", field="name")
    team = Team(tenant_id=principal.tenant_id, id=uuid.uuid4(), name=name.strip())
    uow.session.add(team)
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as e:
        raise Conflict(f"a team named {name!r} already exists", field="name") from e
    await audit.record(uow, principal, Action.TEAM_CREATED, target=("Team", team.id),
                       details={"name": team.name})
    return team


async def create_user(
    *,
    uow: UnitOfWork,
    principal: Principal,
    email: str,
    name: str,
    role: Role,
    team_id: uuid.UUID | None,
    password: str | None,
) -> tuple[User, str]:
    """Add a user; returns it with its initial password (generated when not given)."""
    principal.require_role(Role.ADMIN)
    email = validate_email(email)
    if not name.strip():
        raise ValidationFailed("name must not be empty", field="name")
    if team_id is not None and await uow.session.get(Team, (principal.tenant_id, team_id)) is None:
        raise NotFound("team not found", field="teamId")
    initial = password or secrets.token_urlsafe(12)
    if len(initial) < 8:
        raise ValidationFailed("password must be at least 8 characters", field="password")
    user = User(
        tenant_id=principal.tenant_id,
        id=uuid.uuid4(),
        email=email,
        name=name.strip(),
        role=role.value,
        team_id=team_id,
        password_hash=hash_password(initial),
    )
    uow.session.add(user)
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as e:
        raise Conflict(f"a user with email {email!r} already exists", field="email") from e
    await audit.record(uow, principal, Action.USER_CREATED, target=("User", user.id),
                       details={"role": user.role, "team_id": team_id})
    return user, initial


async def create_api_key(
    *, uow: UnitOfWork, principal: Principal, name: str, scope: Scope
) -> tuple[ApiKey, str]:
    """Create a key; the returned secret is shown once and never stored."""
    principal.require_role(Role.ADMIN)
    if not name.strip() or len(name) > 200:
        raise ValidationFailed("key name must be 1-200 characters", field="name")
    fresh = new_api_key(principal.tenant_id)
    key = ApiKey(
        tenant_id=principal.tenant_id,
        id=fresh.id,
        name=name.strip(),
        secret_hash=fresh.secret_hash,
        scope=scope.value,
        created_by=principal.user_id,
    )
    uow.session.add(key)
    await uow.session.flush()
    await audit.record(uow, principal, Action.KEY_CREATED, target=("ApiKey", key.id),
                       details={"name": key.name, "scope": key.scope})
    return key, fresh.secret


async def revoke_api_key(*, uow: UnitOfWork, principal: Principal, key_id: uuid.UUID) -> ApiKey:
    principal.require_role(Role.ADMIN)
    key = await uow.session.get(ApiKey, (principal.tenant_id, key_id))
    if key is None:
        raise NotFound("API key not found", field="id")
    if key.revoked_at is None:
        await uow.session.execute(
            update(ApiKey)
            .where(ApiKey.tenant_id == principal.tenant_id, ApiKey.id == key_id)
            .values(revoked_at=text("now()"))
        )
        await uow.session.refresh(key)
        await audit.record(uow, principal, Action.KEY_REVOKED, target=("ApiKey", key.id),
                           details={"name": key.name})
    return key


async def list_api_keys(*, uow: UnitOfWork, principal: Principal) -> list[ApiKey]:
    principal.require_role(Role.ADMIN)
    rows = await uow.session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))
    return list(rows.scalars())
