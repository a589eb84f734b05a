"""Password resets and invitations by e-mail: single-use, expiring links.

Both send a link `<APP_BASE_URL>/reset-password?token=...` or `/accept-invitation?token=...`
through the SMTP settings campaigns use; the web frontend posts the token back with the new
password (`resetPassword`, `acceptInvitation`). Tokens are stored as SHA-256 hashes, are
single use, expire (PASSWORD_RESET_TTL_SECONDS 1 h, INVITATION_TTL_SECONDS 7 days), and a new
one replaces the unused previous one. `requestPasswordReset` answers the same whether or not
the account exists (and is throttled like logins, so it cannot be used to flood a mailbox).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from saas.campaigns.mailer import DeliveryError
from saas.db import Database, UnitOfWork
from saas.errors import ValidationFailed
from saas.settings import Settings
from tenants import audit, mail, passwords, sessions, users
from tenants.audit import Action
from tenants.models import Tenant, User
from tenants.principal import Principal, Role
from tenants.service import principal_for_user, tenant_id_by_slug
from tenants.throttle import LoginThrottle

log = logging.getLogger("tenants.recovery")

RESET = "password_reset"
INVITATION = "invitation"


async def _sender(uow: UnitOfWork) -> tuple[str | None, str]:
    tenant = await uow.session.get(Tenant, uow.tenant_id)
    assert tenant is not None
    return tenant.sender_email, tenant.name


async def request_reset(*, db: Database, settings: Settings, throttle: LoginThrottle,
                        tenant_slug: str, email: str, address: str | None) -> None:
    """E-mail a reset link if the account exists and is active; the same answer otherwise."""
    await throttle.attempt(tenant=tenant_slug, email=email, address=address)
    tenant_id = await tenant_id_by_slug(db, tenant_slug)
    if tenant_id is None:
        return
    async with db.unit_of_work(tenant_id) as uow:
        user = (await uow.session.execute(select(User).where(
            text("lower(email) = lower(:email)")), {"email": email.strip()})).scalar_one_or_none()
        if user is None or not user.is_active:
            return
        token = await users.issue_token(uow=uow, user=user, purpose=RESET,
                                        ttl=settings.password_reset_ttl_seconds)
        await audit.record(uow, principal_for_user(user, address=address),
                           Action.PASSWORD_RESET_REQUESTED, target=("User", user.id))
        sender, tenant_name = await _sender(uow)
    minutes = settings.password_reset_ttl_seconds // 60
    try:
        await mail.send(settings, sender=sender, to=user.email,
                        subject=f"Reset your {tenant_name} password",
                        body=f"Someone asked to reset the password of {user.email}.\n\n"
                             f"Choose a new one here (the link works once, for {minutes} "
                             f"minutes):\n{mail.link(settings, 'reset-password', token)}\n\n"
                             "If it was not you, ignore this message.\n")
    except DeliveryError as e:  # the answer must not depend on the account existing
        log.warning("password reset e-mail for user %s not delivered: %s", user.id, e.message)


async def reset(*, db: Database, token: str, new_password: str, address: str | None) -> None:
    """Set a new password from a reset link: every session of the user ends."""
    tenant_id, _ = users.token_tenant(token)
    async with db.unit_of_work(tenant_id) as uow:
        user = await users.use_token(uow=uow, secret=token, purpose=RESET)
        await users.set_password(uow=uow, user=user, password=new_password,
                                 reason="password_reset")
        await audit.record(uow, principal_for_user(user, address=address), Action.PASSWORD_RESET,
                           target=("User", user.id))


async def invite(*, uow: UnitOfWork, principal: Principal, settings: Settings, email: str,
                 name: str, role: Role, team_id: uuid.UUID | None) -> tuple[User, datetime]:
    """A user without a password and an e-mail with the link to choose one. The e-mail is
    sent before commit: if it is not accepted, nothing is saved."""
    user, _ = await users.create(uow=uow, principal=principal, email=email, name=name,
                                 role=role, team_id=team_id, password=None,
                                 action=Action.USER_INVITED)
    token = await users.issue_token(uow=uow, user=user, purpose=INVITATION,
                                    ttl=settings.invitation_ttl_seconds)
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.invitation_ttl_seconds)
    sender, tenant_name = await _sender(uow)
    try:
        await mail.send(settings, sender=sender, to=user.email,
                        subject=f"You are invited to {tenant_name}",
                        body=f"Hello {user.name},\n\nyou have been invited to {tenant_name} "
                             f"as {role.value}. Choose your password here (the link works "
                             f"once, until {expires_at:%Y-%m-%d %H:%M} UTC):\n"
                             f"{mail.link(settings, 'accept-invitation', token)}\n")
    except DeliveryError as e:
        raise ValidationFailed(f"the invitation e-mail could not be delivered ({e.message}); "
                               "nothing was saved", field="input.email") from e
    return user, expires_at


async def accept_invitation(*, db: Database, settings: Settings, token: str, password: str,
                            address: str | None, user_agent: str | None) -> sessions.Tokens:
    """Choose the first password from an invitation link; returns a logged-in session."""
    tenant_id, _ = users.token_tenant(token)
    async with db.unit_of_work(tenant_id) as uow:
        user = await users.use_token(uow=uow, secret=token, purpose=INVITATION)
        passwords.check_rules(password, email=user.email, field="input.password")
        user.password_hash = await passwords.hash_password(password)
        user.password_changed_at = datetime.now(UTC)
        await uow.session.flush()
        await audit.record(uow, principal_for_user(user, address=address),
                           Action.INVITATION_ACCEPTED, target=("User", user.id))
        return await sessions.start(uow=uow, settings=settings, user=user, address=address,
                                    user_agent=user_agent)
