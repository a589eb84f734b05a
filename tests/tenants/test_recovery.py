"""Password reset and invitations by e-mail through a real SMTP server on loopback: single
use, expiring, no account oracle, nothing saved when the invitation cannot be sent."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from saas.settings import Settings
from tests.campaigns.support import SmtpServer
from tests.factories import Caller, TenantFactory, snapshot

REQUEST = """mutation($t: String!, $e: String!) { requestPasswordReset(input: {tenant: $t,
  email: $e}) { accepted errors { code message } } }"""
RESET = """mutation($token: String!, $p: String!) { resetPassword(input: {token: $token,
  newPassword: $p}) { accepted errors { code field message } } }"""
INVITE = """mutation($input: InviteUserInput!) { inviteUser(input: $input) {
  user { id email role isActive } expiresAt errors { code field message } } }"""
ACCEPT = """mutation($token: String!, $p: String!) { acceptInvitation(input: {token: $token,
  password: $p}) { token refreshToken user { email role } errors { code field message } } }"""
LOGIN = """mutation($t: String!, $e: String!, $p: String!) { login(input: {tenant: $t,
  email: $e, password: $p}) { token errors { code } } }"""


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def mail_client(settings: Settings, smtp: SmtpServer) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process app whose mail goes to the loopback SMTP server."""
    from saas.app import create_app

    app = create_app(settings.model_copy(update={
        "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_timeout_seconds": 10.0,
        "app_base_url": "https://app.example", "db_pool_size": 2, "db_max_overflow": 2}))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as client:
            yield client


def token_in(body: str, path: str) -> str:
    found = re.search(rf"https://app\.example/{path}\?token=(\S+)", body)
    assert found, body
    return found.group(1)


async def test_a_reset_link_works_once_and_ends_every_session(
    tenants: TenantFactory, mail_client: httpx.AsyncClient, smtp: SmtpServer,
    owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    anonymous = Caller(mail_client, {})
    session = (await anonymous.ok(LOGIN, t=t.slug, e=t.admin_email, p=t.admin_password))

    asked = await anonymous.ok(REQUEST, t=t.slug, e=t.admin_email.upper())
    unknown = await anonymous.ok(REQUEST, t=t.slug, e="nobody@example.com")

    assert asked == unknown == {"requestPasswordReset": {"accepted": True, "errors": []}}
    assert len(smtp.handler.received) == 1  # only the real account got mail
    mail = smtp.handler.received[0]
    assert mail.rcpt_tos == [t.admin_email]
    token = token_in(mail.body, "reset-password")
    weak = await anonymous.ok(RESET, token=token, p="short")
    done = await anonymous.ok(RESET, token=token, p="a new long passphrase")
    reused = await anonymous.ok(RESET, token=token, p="another long passphrase")

    assert weak["resetPassword"]["errors"][0]["field"] == "input.newPassword"
    assert done["resetPassword"] == {"accepted": True, "errors": []}
    assert reused["resetPassword"]["errors"] == [{
        "code": "VALIDATION_FAILED", "field": "input.token",
        "message": "this link has already been used"}]
    old_token = session["login"]["token"]
    refused = await Caller(mail_client, {"Authorization": f"Bearer {old_token}"}).gql(
        "{ me { tenantId } }")
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await anonymous.ok(LOGIN, t=t.slug, e=t.admin_email,
                               p="a new long passphrase"))["login"]["token"]
    stored = await owner_conn.fetch("SELECT token_hash FROM user_tokens WHERE tenant_id = $1",
                                    t.id)
    assert [r["token_hash"] for r in stored] != [token] and token not in str(
        [dict(r) for r in await owner_conn.fetch(
            "SELECT * FROM audit_events WHERE tenant_id = $1", t.id)])
    actions = [r["action"] for r in await owner_conn.fetch(
        "SELECT action FROM audit_events WHERE tenant_id = $1 AND action LIKE "
        "'user.password%' ORDER BY occurred_at", t.id)]
    assert actions == ["user.password_reset_requested", "user.password_reset"]


async def test_forged_and_expired_reset_tokens_are_refused_and_change_nothing(
    tenants: TenantFactory, mail_client: httpx.AsyncClient, smtp: SmtpServer,
    owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    anonymous = Caller(mail_client, {})
    await anonymous.ok(REQUEST, t=t.slug, e=t.admin_email)
    token = token_in(smtp.handler.received[0].body, "reset-password")
    await owner_conn.execute("UPDATE user_tokens SET expires_at = now() - interval '1 second' "
                             "WHERE tenant_id = $1", t.id)
    before = await snapshot(owner_conn, t.id)
    cases = {token: "this link has expired; ask for a new one",
             token[:-3] + "xyz": "this link is not valid",
             f"{uuid.uuid4().hex}_{uuid.uuid4().hex}_x": "this link is not valid",
             "garbage": "this link is not valid"}
    for bad, message in cases.items():
        data = await anonymous.ok(RESET, token=bad, p="a new long passphrase")
        assert data["resetPassword"]["errors"] == [{"code": "VALIDATION_FAILED",
                                                    "field": "input.token", "message": message}]
    assert await snapshot(owner_conn, t.id) == before


async def test_an_invited_user_chooses_a_password_through_the_link(
    tenants: TenantFactory, mail_client: httpx.AsyncClient, smtp: SmtpServer,
    owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    admin = Caller(mail_client, t.admin_caller.headers)
    invited = await admin.ok(INVITE, input={"email": "new.rep@example.com", "name": "New Rep",
                                            "role": "REP"})
    assert invited["inviteUser"]["errors"] == []
    assert invited["inviteUser"]["user"]["email"] == "new.rep@example.com"
    anonymous = Caller(mail_client, {})
    before_accept = await anonymous.ok(LOGIN, t=t.slug, e="new.rep@example.com",
                                       p="anything at all")
    token = token_in(smtp.handler.received[0].body, "accept-invitation")

    accepted = await anonymous.ok(ACCEPT, token=token, p="my very own password")
    twice = await anonymous.ok(ACCEPT, token=token, p="my very own password")

    assert before_accept["login"]["errors"][0]["code"] == "UNAUTHENTICATED"
    assert accepted["acceptInvitation"]["user"] == {"email": "new.rep@example.com",
                                                    "role": "REP"}
    assert accepted["acceptInvitation"]["token"] and accepted["acceptInvitation"]["refreshToken"]
    assert twice["acceptInvitation"]["errors"][0]["message"] == "this link has already been used"
    assert (await anonymous.ok(LOGIN, t=t.slug, e="new.rep@example.com",
                               p="my very own password"))["login"]["token"]
    actions = [r["action"] for r in await owner_conn.fetch(
        "SELECT action FROM audit_events WHERE tenant_id = $1 AND action LIKE 'user.inv%' "
        "ORDER BY occurred_at", t.id)]
    assert actions == ["user.invited", "user.invitation_accepted"]


async def test_an_invitation_that_cannot_be_sent_saves_nothing(
    tenants: TenantFactory, mail_client: httpx.AsyncClient, smtp: SmtpServer,
    owner_conn: asyncpg.Connection,
) -> None:
    t = await tenants.create()
    before = await snapshot(owner_conn, t.id)
    smtp.handler.rcpt_replies.append("550 5.1.1 no such mailbox")
    admin = Caller(mail_client, t.admin_caller.headers)

    data = await admin.ok(INVITE, input={"email": "ghost@example.com", "name": "Ghost",
                                         "role": "REP"})

    error = data["inviteUser"]["errors"][0]
    assert (error["code"], error["field"]) == ("VALIDATION_FAILED", "input.email")
    assert "could not be delivered (550 5.1.1 no such mailbox); nothing was saved" in \
        error["message"]
    assert await snapshot(owner_conn, t.id) == before


