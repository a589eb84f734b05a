"""Mutations of sessions and passwords: login, refresh, logout, changePassword, password
reset and accepting an invitation. Thin: call one service, map the result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry

from saas.errors import DomainError
from schema.context import Info
from schema.errors import user_error
from schema.mutations import payload
from schema.tenants.types import AcceptedPayload, LoginPayload, LogoutPayload, User
from tenants import recovery, sessions, users
from tenants import service as tenancy
from tenants.sessions import Tokens


@strawberry.input
class LoginInput:
    tenant: str = strawberry.field(description="The tenant's slug.")
    email: str
    password: str


@strawberry.input
class RefreshInput:
    refresh_token: str


@strawberry.input
class LogoutInput:
    refresh_token: str | None = strawberry.field(
        default=None, description="End this token's session instead of the access token's.")


@strawberry.input
class ChangePasswordInput:
    current_password: str
    new_password: str


@strawberry.input
class RequestPasswordResetInput:
    tenant: str
    email: str


@strawberry.input
class ResetPasswordInput:
    token: str = strawberry.field(description="From the e-mailed link.")
    new_password: str


@strawberry.input
class AcceptInvitationInput:
    token: str = strawberry.field(description="From the e-mailed link.")
    password: str


def _tokens(t: Tokens) -> LoginPayload:
    return LoginPayload(token=t.access_token, expires_in=t.expires_in,
                        refresh_token=t.refresh_token, refresh_expires_in=t.refresh_expires_in,
                        user=User.from_model(t.user))


def _user_agent(info: Info) -> str | None:
    request = info.context.request
    return request.headers.get("user-agent") if request is not None else None


@strawberry.type
class SessionsMutation:
    @strawberry.mutation(description="Email + password -> an access token (15 min) and a "
                                     "refresh token. Throttled per account and address; every "
                                     "`login` field of a document is one attempt.")
    async def login(self, info: Info, input: LoginInput) -> LoginPayload:
        ctx = info.context
        try:
            tokens = await tenancy.login(
                db=ctx.db, settings=ctx.settings, throttle=ctx.services.throttle,
                tenant_slug=input.tenant, email=input.email, password=input.password,
                address=ctx.address, user_agent=_user_agent(info))
        except DomainError as e:
            return LoginPayload(errors=[user_error(e)])
        return _tokens(tokens)

    @strawberry.mutation(description="A refresh token -> a new access token and a new refresh "
                                     "token (the old one is used up; using it again revokes "
                                     "the session).")
    async def refresh(self, info: Info, input: RefreshInput) -> LoginPayload:
        ctx = info.context
        try:
            tokens = await sessions.refresh(db=ctx.db, settings=ctx.settings,
                                            refresh_token=input.refresh_token,
                                            address=ctx.address)
        except DomainError as e:
            return LoginPayload(errors=[user_error(e)])
        return _tokens(tokens)

    @strawberry.mutation(description="End the session: its access and refresh tokens stop "
                                     "working and its websockets close.")
    async def logout(self, info: Info, input: LogoutInput | None = None) -> LogoutPayload:
        principal = info.context.require_principal()

        async def act() -> LogoutPayload:
            async with info.context.uow() as uow:
                ended = await sessions.logout(uow=uow, principal=principal,
                                              refresh_token=input.refresh_token if input else None)
            return LogoutPayload(logged_out=ended)

        return await payload(LogoutPayload, act)

    @strawberry.mutation(description="Your own password; your other sessions end.")
    async def change_password(self, info: Info, input: ChangePasswordInput) -> AcceptedPayload:
        principal = info.context.require_principal()

        async def act() -> AcceptedPayload:
            async with info.context.uow() as uow:
                await users.change_password(uow=uow, principal=principal,
                                            current=input.current_password,
                                            new=input.new_password)
            return AcceptedPayload(accepted=True)

        return await payload(AcceptedPayload, act)

    @strawberry.mutation(description="E-mail a single-use reset link; answers the same whether "
                                     "or not the account exists.")
    async def request_password_reset(self, info: Info,
                                     input: RequestPasswordResetInput) -> AcceptedPayload:
        ctx = info.context
        try:
            await recovery.request_reset(db=ctx.db, settings=ctx.settings,
                                         throttle=ctx.services.throttle,
                                         tenant_slug=input.tenant, email=input.email,
                                         address=ctx.address)
        except DomainError as e:
            return AcceptedPayload(errors=[user_error(e)])
        return AcceptedPayload(accepted=True)

    @strawberry.mutation(description="Choose a new password with a reset link's token.")
    async def reset_password(self, info: Info, input: ResetPasswordInput) -> AcceptedPayload:
        ctx = info.context

        async def act() -> AcceptedPayload:
            await recovery.reset(db=ctx.db, token=input.token, new_password=input.new_password,
                                 address=ctx.address)
            return AcceptedPayload(accepted=True)

        return await _anonymous(AcceptedPayload, act)

    @strawberry.mutation(description="Choose your first password with an invitation's token; "
                                     "returns a logged-in session.")
    async def accept_invitation(self, info: Info, input: AcceptInvitationInput) -> LoginPayload:
        ctx = info.context

        async def act() -> LoginPayload:
            return _tokens(await recovery.accept_invitation(
                db=ctx.db, settings=ctx.settings, token=input.token, password=input.password,
                address=ctx.address, user_agent=_user_agent(info)))

        return await _anonymous(LoginPayload, act)


P = TypeVar("P")


async def _anonymous(cls: Callable[..., P], action: Callable[[], Awaitable[P]]) -> P:
    """Like `payload`, but an Unauthenticated error is a payload error too (these mutations
    need no credentials)."""
    try:
        return await action()
    except DomainError as e:
        return cls(errors=[user_error(e)])
