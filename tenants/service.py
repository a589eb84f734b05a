"""Tenant provisioning, login and teams (keyword-only service functions).

Users are in tenants/users.py, API keys in tenants/keys.py, sessions in tenants/sessions.py.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from saas.db import Database, UnitOfWork
from saas.errors import Conflict, LimitExceeded, NotFound, Unauthenticated, ValidationFailed
from saas.settings import Settings
from tenants import audit, passwords, sessions
from tenants.audit import Action
from tenants.models import Team, Tenant, User
from tenants.principal import Principal, Role
from tenants.provisioning import provision_defaults
from tenants.scopes import Scope
from tenants.throttle import LoginThrottle
from tenants.users import get_user
from tenants.validation import SLUG, validate_email

__all__ = ["get_user", "validate_email"]

LOGIN_FAILED = "wrong tenant, email or password"


@dataclass(frozen=True)
class ProvisionedTenant:
    tenant: Tenant
    admin: User
    admin_password: str


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
    password = admin_password or secrets.token_urlsafe(15)
    passwords.check_rules(password, email=admin_email, field="adminPassword")
    password_hash = await passwords.hash_password(password)
    tenant = Tenant(id=uuid.uuid4(), slug=slug, name=name.strip())
    try:
        async with db.unit_of_work(tenant.id) as uow:
            uow.session.add(tenant)
            await uow.session.flush()
            admin = User(tenant_id=tenant.id, id=uuid.uuid4(), email=admin_email,
                         name=admin_email.split("@")[0], role=Role.ADMIN.value,
                         password_hash=password_hash, auth_epoch=1)
            uow.session.add(admin)
            await uow.session.flush()
            await provision_defaults(uow=uow, tenant_id=tenant.id)
    except IntegrityError as e:
        raise Conflict(f"a tenant with slug {slug!r} already exists", field="slug") from e
    return ProvisionedTenant(tenant=tenant, admin=admin, admin_password=password)


async def tenant_id_by_slug(db: Database, slug: str) -> uuid.UUID | None:
    """The only way to find a tenant without being in it (a SECURITY DEFINER function)."""
    async with db.unit_of_work(None) as uow:
        found: uuid.UUID | None = (await uow.session.execute(
            text("SELECT tenant_by_slug(:s)"), {"s": slug.strip().lower()})).scalar_one()
    return found


async def login(*, db: Database, settings: Settings, throttle: LoginThrottle, tenant_slug: str,
                email: str, password: str, address: str | None,
                user_agent: str | None) -> sessions.Tokens:
    """Check a password and start a session. Unknown tenant, unknown email, wrong password
    and a deactivated user get the same answer after the same work (a dummy hash is
    verified when there is no account); attempts are throttled per account and address."""
    try:
        await throttle.attempt(tenant=tenant_slug, email=email, address=address)
    except LimitExceeded:
        tenant_id = await tenant_id_by_slug(db, tenant_slug)
        if tenant_id is not None:
            async with db.unit_of_work(tenant_id) as uow:
                await audit.record(uow, None, Action.LOGIN_THROTTLED, address=address,
                                   details={"email": email.strip().lower()})
        raise
    tenant_id = await tenant_id_by_slug(db, tenant_slug)
    user = None
    if tenant_id is not None:
        async with db.unit_of_work(tenant_id) as uow:
            user = (await uow.session.execute(
                select(User).where(text("lower(email) = lower(:email)")),
                {"email": email.strip()})).scalar_one_or_none()
    matches = await passwords.verify_password(user.password_hash if user else None, password)
    if tenant_id is None:
        raise Unauthenticated(LOGIN_FAILED)
    async with db.unit_of_work(tenant_id) as uow:
        if user is None or not matches or not user.is_active:
            await audit.record(uow, None, Action.LOGIN_FAILED, address=address,
                               target=("User", user.id) if user else None,
                               details={"email": email.strip().lower(),
                                        "reason": "unknown account" if user is None
                                        else "wrong password" if not matches
                                        else "deactivated"})
            failed = True
        else:
            failed = False
            principal = principal_for_user(user, address=address)
            if user.password_hash and passwords.needs_rehash(user.password_hash):
                await uow.session.execute(
                    update(User).where(User.id == user.id)
                    .values(password_hash=await passwords.hash_password(password)))
            tokens = await sessions.start(uow=uow, settings=settings, user=user,
                                          address=address, user_agent=user_agent)
            await audit.record(uow, principal, Action.LOGIN_SUCCEEDED, target=("User", user.id),
                               details={"session_id": tokens.session_id})
    if failed:
        raise Unauthenticated(LOGIN_FAILED)
    await throttle.succeeded(tenant=tenant_slug, email=email, address=address)
    return tokens


def principal_for_user(user: User, *, address: str | None = None) -> Principal:
    return Principal(tenant_id=user.tenant_id, user_id=user.id, role=Role(user.role),
                     team_id=user.team_id, address=address)


async def get_tenant(*, uow: UnitOfWork, tenant_id: uuid.UUID) -> Tenant:
    tenant = await uow.session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant not found")
    return tenant


async def create_team(*, uow: UnitOfWork, principal: Principal, name: str) -> Team:
    principal.require(Scope.USERS_ADMIN)
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
