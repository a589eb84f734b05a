"""Idempotency keys (IETF httpapi `Idempotency-Key`): one response per (tenant, principal, key).

`claim` inserts the key's row inside the unit of work that then runs the mutation, and
`finish` stores the response in it before that unit commits: the effects and the stored
response commit together or not at all. A concurrent request with the same key blocks on
the row's primary key until the first commits (then it replays the stored response) or rolls
back (then it runs itself); `lock_timeout` bounds that wait.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

import orjson
from sqlalchemy import text

from saas.db import UnitOfWork
from saas.errors import ValidationFailed
from tenants.principal import Principal

MAX_KEY = 255


@dataclass(frozen=True)
class Stored:
    """What an earlier request with the key left: its body hash and response."""

    request_hash: str
    status_code: int | None
    response: bytes | None


def parse_key(header: str) -> str:
    """The key of an `Idempotency-Key` header (a structured-field string, quotes optional)."""
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 0 < len(key) <= MAX_KEY or not all(32 < ord(ch) < 127 for ch in key):
        raise ValidationFailed(f"Idempotency-Key must be 1-{MAX_KEY} printable ASCII "
                               "characters without spaces", field="Idempotency-Key")
    return key


def request_hash(query: object, operation_name: object, variables: object) -> str:
    """The fingerprint of what was asked: the same document, operation and variables."""
    canonical = orjson.dumps({"q": query, "o": operation_name, "v": variables or {}},
                             option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def principal_key(principal: Principal) -> str:
    if principal.api_key_id is not None:
        return f"key:{principal.api_key_id}"
    return f"user:{principal.user_id}"


async def claim(uow: UnitOfWork, *, principal: Principal, key: str, fingerprint: str,
                ttl_seconds: float, lock_timeout_ms: int) -> Stored | None:
    """None: the key is ours now (run the request, then `finish`); else what is stored."""
    await uow.session.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
    params = {"t": uow.tenant_id, "p": principal_key(principal), "k": key, "h": fingerprint,
              "ttl": timedelta(seconds=ttl_seconds)}
    # An expired key is free again (its row goes in the same statement's snapshot order).
    await uow.session.execute(text(
        "DELETE FROM idempotency_keys WHERE principal = :p AND key = :k "
        "AND expires_at <= now()"), params)
    inserted = (await uow.session.execute(text(
        "INSERT INTO idempotency_keys (tenant_id, principal, key, request_hash, expires_at) "
        "VALUES (:t, :p, :k, :h, now() + :ttl) ON CONFLICT DO NOTHING RETURNING key"),
        params)).scalar()
    if inserted is not None:
        # The wait bound was for the key only: the request itself waits as usual.
        await uow.session.execute(text("SET LOCAL lock_timeout TO DEFAULT"))
        return None
    row = (await uow.session.execute(text(
        "SELECT request_hash, status_code, response FROM idempotency_keys "
        "WHERE principal = :p AND key = :k"), params)).one()
    return Stored(row.request_hash, row.status_code,
                  bytes(row.response) if row.response is not None else None)


async def finish(uow: UnitOfWork, *, principal: Principal, key: str, status_code: int,
                 response: bytes) -> None:
    await uow.session.execute(text(
        "UPDATE idempotency_keys SET status_code = :s, response = :r "
        "WHERE principal = :p AND key = :k"),
        {"p": principal_key(principal), "k": key, "s": status_code, "r": response})


async def purge(uow: UnitOfWork) -> int:
    """Delete the tenant's expired keys."""
    rows = await uow.session.execute(text(
        "DELETE FROM idempotency_keys WHERE expires_at <= now() RETURNING key"))
    return len(rows.all())

