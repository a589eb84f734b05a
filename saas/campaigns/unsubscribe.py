"""Unsubscribe links: an HMAC-signed token naming the tenant and the contact.

The token is `base64url(tenant uuid | contact uuid | HMAC-SHA256(secret, both)[:16])`: it
needs no database lookup to verify, cannot be forged or pointed at another contact without
the secret (`UNSUBSCRIBE_SECRET`), and never expires (links in old emails keep working).
Following it marks the contact unsubscribed and stops every active enrollment of the contact's
deals, in every campaign of the tenant.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from html import escape

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from saas.campaigns.service import stop_enrollments
from saas.contacts.lifecycle import resolve_merged
from saas.db import Database
from saas.settings import Settings

_MAC_BYTES = 16


def _mac(secret: str, payload: bytes) -> bytes:
    digest = hmac.new(secret.encode(), b"unsubscribe:" + payload, hashlib.sha256).digest()
    return digest[:_MAC_BYTES]


def make_token(secret: str, tenant_id: uuid.UUID, contact_id: uuid.UUID) -> str:
    payload = tenant_id.bytes + contact_id.bytes
    return base64.urlsafe_b64encode(payload + _mac(secret, payload)).decode().rstrip("=")


def read_token(secret: str, token: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(tenant, contact) of a genuine token; None for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) != 32 + _MAC_BYTES:
        return None
    payload, mac = raw[:32], raw[32:]
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        return None
    return uuid.UUID(bytes=payload[:16]), uuid.UUID(bytes=payload[16:])


def url_for(settings: Settings, tenant_id: uuid.UUID, contact_id: uuid.UUID) -> str:
    token = make_token(settings.unsubscribe_secret, tenant_id, contact_id)
    return f"{settings.public_base_url.rstrip('/')}/unsubscribe/{token}"


async def unsubscribe(*, db: Database, tenant_id: uuid.UUID, contact_id: uuid.UUID,
                      now: datetime) -> bool:
    """Mark the contact unsubscribed and stop its enrollments; False if it does not exist."""
    async with db.unit_of_work(tenant_id) as uow:
        # A link mailed to a contact that was merged since unsubscribes the survivor.
        contact_id = await resolve_merged(uow, contact_id)
        found = (await uow.session.execute(text(
            "UPDATE contacts SET unsubscribed_at = coalesce(unsubscribed_at, :now) "
            "WHERE id = :c RETURNING id"), {"c": contact_id, "now": now})).scalar()
        if found is None:
            return False
        await stop_enrollments(
            uow, where="contact_id = :c OR deal_id IN (SELECT id FROM deals WHERE contact_id = :c)",
            params={"c": contact_id}, reason="unsubscribed", now=now)
    return True


_PAGE = ("<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
         "<body><p>{text}</p></body></html>")


async def endpoint(request: Request) -> Response:
    """GET (the link in the email) and POST (RFC 8058 one-click) /unsubscribe/{token}."""
    services = request.app.state.services
    ids = read_token(services.settings.unsubscribe_secret, request.path_params["token"])
    done = False
    if ids is not None:
        done = await unsubscribe(db=services.db, tenant_id=ids[0], contact_id=ids[1],
                                 now=datetime.now(UTC))
    if not done:
        return HTMLResponse(_PAGE.format(title="Invalid link",
                                         text=escape("This unsubscribe link is not valid.")),
                            status_code=404)
    return HTMLResponse(_PAGE.format(
        title="Unsubscribed", text=escape("You are unsubscribed: you will get no more emails "
                                          "from these campaigns.")))
