"""`Idempotency-Key` on POST /graphql: a mutation runs once per key; repeats replay it.

    first request          claims the key and runs the mutation in the same transaction
                           (resolvers use it through `Context.pinned_uow`, each in a
                           savepoint); the response is stored before that commits
    same key, same body    the stored response, byte for byte (`Idempotent-Replayed: true`)
    same key, other body   422 IDEMPOTENCY_KEY_REUSED, nothing runs
    while the first runs   waits for it (the row's lock) up to IDEMPOTENCY_WAIT_SECONDS,
                           then 409 IDEMPOTENCY_KEY_IN_PROGRESS with Retry-After
    after the key expires  (IDEMPOTENCY_TTL_SECONDS, 24 h) a new request

Keys are per tenant and principal (a user, or an API key): two callers never share one.
Queries ignore the header (they change nothing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.exc import DBAPIError
from starlette.responses import Response

from saas import idempotency
from saas.errors import ValidationFailed
from schema.context import Context

HEADER = "idempotency-key"
LOCK_NOT_AVAILABLE = "55P03"
IN_PROGRESS = "a request with this Idempotency-Key is still running; retry later"


class Refused(Exception):
    """The key cannot be used: an HTTP status, a code and a message for the caller."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def _lock_timeout(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE or \
        "lock timeout" in str(error.orig)


async def once(context: Context, *, key_header: str, query: str | None,
               operation_name: str | None, variables: object,
               run: Callable[[], Awaitable[Response]], ttl_seconds: float,
               wait_seconds: float) -> tuple[int, bytes, bool]:
    """(status, body, replayed) of the mutation under this key; `run` executes it the first
    time, inside the transaction that stores its answer. Raises Refused."""
    try:
        key = idempotency.parse_key(key_header)
    except ValidationFailed as e:
        raise Refused(400, "BAD_REQUEST", e.message) from e
    principal = context.principal
    assert principal is not None
    fingerprint = idempotency.request_hash(query, operation_name, variables)
    try:
        async with context.db.unit_of_work(principal.tenant_id) as uow:
            stored = await idempotency.claim(uow, principal=principal, key=key,
                                             fingerprint=fingerprint, ttl_seconds=ttl_seconds,
                                             lock_timeout_ms=int(wait_seconds * 1000))
            if stored is None:
                context.pinned_uow, context.pinned_savepoints = uow, True
                try:
                    response = await run()
                finally:
                    context.pinned_uow, context.pinned_savepoints = None, False
                body = bytes(response.body)
                await idempotency.finish(uow, principal=principal, key=key,
                                         status_code=response.status_code, response=body)
                return response.status_code, body, False
    except DBAPIError as e:
        if not _lock_timeout(e):
            raise
        raise Refused(409, "IDEMPOTENCY_KEY_IN_PROGRESS", IN_PROGRESS,
                      {"Retry-After": "1"}) from e
    if stored.request_hash != fingerprint:
        raise Refused(422, "IDEMPOTENCY_KEY_REUSED",
                      "this Idempotency-Key was used for a different request; use a new key")
    if stored.response is None or stored.status_code is None:
        raise Refused(409, "IDEMPOTENCY_KEY_IN_PROGRESS", IN_PROGRESS, {"Retry-After": "1"})
    return stored.status_code, stored.response, True
