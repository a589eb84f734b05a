"""The user lifecycle: create, invite, update (name, role, team), deactivate, reactivate,
change and reset passwords. Every change applies at the next request (authcache) and is
audited in the same transaction.

Nobody gives a role more scopes than they hold themselves; a tenant always keeps at least
one active admin. Deactivation ends every session of the user (their access tokens stop at
the next request, their websockets close) and can hand their open deals to someone else in
the same mutation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from saas.db import UnitOfWork
from saas.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tenants import audit, passwords, sessions
from tenants.audit import Action
from tenants.authcache import publish_change
from tenants.models import Team, User
from tenants.principal import Principal, Role
from tenants.scopes import ROLE_SCOPES, Scope
from tenants.validation import validate_email

RANK = {Role.REP: 0, Role.MANAGER: 1, Role.ADMIN: 2}
UNSET: Any = object()


def _check_grant(principal: Principal, role: Role) -> None:
    principal.require_all(ROLE_SCOPES[role.value], what=f"the role {role.value}: it has",
                          field="input.role")


async def get_user(*, uow: UnitOfWork, user_id: uuid.UUID, field: str = "userId",
                   for_update: bool = False) -> User:
    """A user of the current tenant (RLS hides the others, so they are 'not found')."""
    query = select(User).where(User.id == user_id)
    if for_update:
        query = query.with_for_update()
    user = (await uow.session.execute(query)).scalar_one_or_none()
    if user is None:
        raise NotFound("user not found", field=field)
    return user


async def _team_exists(uow: UnitOfWork, team_id: uuid.UUID, field: str) -> None:
    if await uow.session.get(Team, (uow.tenant_id, team_id)) is None:
        raise NotFound("team not found", field=field)


async def create(*, uow: UnitOfWork, principal: Principal, email: str, name: str, role: Role,
                 team_id: uuid.UUID | None, password: str | None,
                 action: str = Action.USER_CREATED) -> tuple[User, str | None]:
    """Add a user; with `password` None and action USER_CREATED a password is generated
    (returned once); invitations pass USER_INVITED and get no password at all."""
    principal.require(Scope.USERS_ADMIN)
    email = validate_email(email, field="input.email")
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed("name must be 1-200 characters", field="input.name")
    _check_grant(principal, role)
    if team_id is not None:
        await _team_exists(uow, team_id, "input.teamId")
    initial = None
    if action == Action.USER_CREATED:
        initial = password or secrets.token_urlsafe(15)
        passwords.check_rules(initial, email=email, field="input.password")
    user = User(tenant_id=principal.tenant_id, id=uuid.uuid4(), email=email, name=name,
                role=role.value, team_id=team_id,
                password_hash=await passwords.hash_password(initial) if initial else None)
    uow.session.add(user)
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as e:
        raise Conflict(f"a user with email {email!r} already exists", field="input.email") from e
    await audit.record(uow, principal, action, target=("User", user.id),
                       details={"email": email, "role": role.value, "team_id": team_id})
    return user, (None if password else initial)


async def _other_active_admins(uow: UnitOfWork, user_id: uuid.UUID) -> int:
    return int((await uow.session.execute(select(func.count()).select_from(User).where(
        User.role == Role.ADMIN.value, User.is_active.is_(True), User.id != user_id))
    ).scalar_one())


async def update(*, uow: UnitOfWork, principal: Principal, user_id: uuid.UUID,
                 name: Any = UNSET, role: Any = UNSET, team_id: Any = UNSET) -> User:
    """Change a user's name, role or team (UNSET: unchanged; team None: no team)."""
    principal.require(Scope.USERS_ADMIN)
    user = await get_user(uow=uow, user_id=user_id, field="input.userId", for_update=True)
    changes: dict[str, Any] = {}
    if name is not UNSET:
        name = (name or "").strip()
        if not name or len(name) > 200:
            raise ValidationFailed("name must be 1-200 characters", field="input.name")
        changes["name"] = name
    old_role = Role(user.role)
    if role is not UNSET and role != old_role:
        _check_grant(principal, role)
        _check_grant(principal, old_role)  # nor change someone who holds more than you
        if old_role == Role.ADMIN and user.is_active and not await _other_active_admins(
                uow, user.id):
            raise Conflict("the tenant needs at least one active admin", field="input.role")
        changes["role"] = role.value
    if team_id is not UNSET and team_id != user.team_id:
        if team_id is not None:
            await _team_exists(uow, team_id, "input.teamId")
        changes["team_id"] = team_id
    if not changes:
        return user
    for key, value in changes.items():
        setattr(user, key, value)
    await uow.session.flush()
    await audit.record(uow, principal, Action.USER_UPDATED, target=("User", user.id),
                       details={k: v for k, v in changes.items()})
    if "role" in changes:
        await audit.record(uow, principal, Action.ROLE_CHANGED, target=("User", user.id),
                           details={"from": old_role.value, "to": changes["role"]})
    if "role" in changes or "team_id" in changes:
        lowered = "role" in changes and RANK[Role(changes["role"])] < RANK[old_role]
        publish_change(uow, user_id=user.id, reason="role_lowered" if lowered
                       else "role_changed" if "role" in changes else "team_changed")
    return user


@dataclass(frozen=True)
class Deactivated:
    user: User
    sessions_ended: int
    deals_reassigned: int


async def deactivate(*, uow: UnitOfWork, principal: Principal, user_id: uuid.UUID,
                     reassign_to: uuid.UUID | None) -> Deactivated:
    """The user can no longer log in; sessions end now; open deals optionally move on."""
    principal.require(Scope.USERS_ADMIN)
    user = await get_user(uow=uow, user_id=user_id, field="input.userId", for_update=True)
    _check_grant(principal, Role(user.role))
    if user.id == principal.user_id:
        raise Conflict("you cannot deactivate yourself", field="input.userId")
    if not user.is_active:
        raise Conflict("the user is already deactivated", field="input.userId")
    if user.role == Role.ADMIN.value and not await _other_active_admins(uow, user.id):
        raise Conflict("the tenant needs at least one active admin", field="input.userId")
    moved = 0
    if reassign_to is not None:
        if reassign_to == user.id:
            raise ValidationFailed("reassign the deals to someone else",
                                   field="input.reassignDealsTo")
        heir = await get_user(uow=uow, user_id=reassign_to, field="input.reassignDealsTo")
        if not heir.is_active:
            raise ValidationFailed("the new owner is deactivated", field="input.reassignDealsTo")
        from saas.deals.reassign import reassign_open_deals

        moved = await reassign_open_deals(uow=uow, principal=principal, from_user=user.id,
                                          to_user=heir.id)
    user.is_active = False
    user.deactivated_at = datetime.now(UTC)
    user.auth_epoch += 1
    await uow.session.flush()
    ended = await sessions.revoke_all(uow=uow, user_id=user.id, reason="deactivated")
    await audit.record(uow, principal, Action.USER_DEACTIVATED, target=("User", user.id),
                       details={"sessions_ended": ended, "deals_reassigned": moved,
                                "reassigned_to": reassign_to})
    publish_change(uow, user_id=user.id, reason="deactivated")
    return Deactivated(user, ended, moved)


async def reactivate(*, uow: UnitOfWork, principal: Principal, user_id: uuid.UUID) -> User:
    principal.require(Scope.USERS_ADMIN)
    user = await get_user(uow=uow, user_id=user_id, field="input.userId", for_update=True)
    _check_grant(principal, Role(user.role))
    if user.is_active:
        raise Conflict("the user is active", field="input.userId")
    user.is_active = True
    user.deactivated_at = None
    await uow.session.flush()
    await audit.record(uow, principal, Action.USER_REACTIVATED, target=("User", user.id))
    publish_change(uow, user_id=user.id, reason="reactivated")
    return user


async def set_password(*, uow: UnitOfWork, user: User, password: str, reason: str,
                       keep_session: uuid.UUID | None = None) -> None:
    """A new password: every other session ends and older access tokens stop working."""
    passwords.check_rules(password, email=user.email, field="input.newPassword")
    user.password_hash = await passwords.hash_password(password)
    user.password_changed_at = datetime.now(UTC)
    user.auth_epoch += 1
    await uow.session.flush()
    await sessions.revoke_all(uow=uow, user_id=user.id, reason=reason, keep=keep_session)
    publish_change(uow, user_id=user.id, reason="password_changed")


async def change_password(*, uow: UnitOfWork, principal: Principal, current: str,
                          new: str) -> User:
    """The caller's own password; the current one is required."""
    if principal.user_id is None:
        raise Forbidden("API keys have no password")
    user = await get_user(uow=uow, user_id=principal.user_id, for_update=True)
    if not await passwords.verify_password(user.password_hash, current):
        raise ValidationFailed("the current password is wrong", field="input.currentPassword")
    if hmac.compare_digest(current, new):
        raise ValidationFailed("choose a password you have not been using",
                               field="input.newPassword")
    await set_password(uow=uow, user=user, password=new, reason="password_changed",
                       keep_session=principal.session_id)
    await audit.record(uow, principal, Action.PASSWORD_CHANGED, target=("User", user.id))
    return user


# -- single-use tokens: invitations and password resets ----------------------------------

def _token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def issue_token(*, uow: UnitOfWork, user: User, purpose: str, ttl: int) -> str:
    """A token `<tenant hex>_<id hex>_<secret>` for a link; earlier unused ones of the same
    purpose stop working."""
    token_id = uuid.uuid4()
    secret = f"{user.tenant_id.hex}_{token_id.hex}_{secrets.token_urlsafe(32)}"
    await uow.session.execute(text(
        "UPDATE user_tokens SET used_at = now() WHERE user_id = :u AND purpose = :p "
        "AND used_at IS NULL"), {"u": user.id, "p": purpose})
    await uow.session.execute(text(
        "INSERT INTO user_tokens (tenant_id, id, user_id, purpose, token_hash, expires_at) "
        "VALUES (:t, :i, :u, :p, :h, :e)"),
        {"t": user.tenant_id, "i": token_id, "u": user.id, "p": purpose,
         "h": _token_hash(secret), "e": datetime.now(UTC) + timedelta(seconds=ttl)})
    return secret


def token_tenant(secret: str) -> tuple[uuid.UUID, uuid.UUID]:
    try:
        tenant_hex, token_hex, _ = secret.strip().split("_", 2)
        return uuid.UUID(hex=tenant_hex), uuid.UUID(hex=token_hex)
    except ValueError as e:
        raise ValidationFailed("this link is not valid", field="input.token") from e


async def use_token(*, uow: UnitOfWork, secret: str, purpose: str) -> User:
    """The user a single-use token is for; marks it used (in the caller's transaction)."""
    _, token_id = token_tenant(secret)
    row = (await uow.session.execute(text(
        "SELECT user_id, token_hash, expires_at, used_at FROM user_tokens "
        "WHERE id = :i AND purpose = :p FOR UPDATE"), {"i": token_id, "p": purpose})
    ).one_or_none()
    if row is None or not hmac.compare_digest(row.token_hash, _token_hash(secret.strip())):
        raise ValidationFailed("this link is not valid", field="input.token")
    if row.used_at is not None:
        raise ValidationFailed("this link has already been used", field="input.token")
    if row.expires_at <= datetime.now(UTC):
        raise ValidationFailed("this link has expired; ask for a new one", field="input.token")
    await uow.session.execute(text("UPDATE user_tokens SET used_at = now() WHERE id = :i"),
                              {"i": token_id})
    user = await get_user(uow=uow, user_id=row.user_id, for_update=True)
    if not user.is_active:
        raise ValidationFailed("this link is not valid", field="input.token")
    return user

