"""Persisted operations: Apollo's automatic persisted queries and trusted documents.

APQ (`extensions.persistedQuery {version: 1, sha256Hash}`): a client first sends only the
hash; an unknown hash is answered `PERSISTED_QUERY_NOT_FOUND` and the client sends the
document with its hash, which is kept (Redis, shared by every API process, for
APQ_TTL_SECONDS) once it validated. A hash that does not match its document is refused.

Trusted documents (TRUSTED_DOCUMENTS=true): callers signed in as users (the first-party web
and mobile apps; their tokens are JWTs) may only run documents registered with
`saas documents register FILE.graphql ...`; partner API keys still send any document.
"""

from __future__ import annotations

import hashlib
from typing import Any

from graphql import parse, print_ast
from graphql.language import DocumentNode, OperationDefinitionNode

from schema.edge.envelope import Envelope, Refusal

APQ_PREFIX = "saas:apq:"
TRUSTED_KEY = "saas:trusted-documents"


class NotPersisted(Exception):
    """A request error of the protocol: `code` and message, answered like other request
    errors (200 under application/json, as Apollo's clients expect)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def sha256(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()


def requested_hash(envelope: Envelope) -> str | None:
    persisted = envelope.extensions.get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1 or not isinstance(
            persisted.get("sha256Hash"), str) or len(persisted["sha256Hash"]) != 64:
        raise Refusal(400, "BAD_REQUEST",
                      "extensions.persistedQuery needs version 1 and a sha256Hash of 64 hex "
                      "characters")
    return str(persisted["sha256Hash"]).lower()


async def resolve(envelope: Envelope, redis: Any, ttl_seconds: int) -> str | None:
    """Fill in the document of a hash-only request; returns the hash to keep once the
    document validated (None: nothing to keep)."""
    digest = requested_hash(envelope)
    if digest is None:
        return None
    if envelope.query is None:
        stored = await redis.get(APQ_PREFIX + digest)
        if stored is None:
            raise NotPersisted("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
        envelope.query = stored.decode() if isinstance(stored, bytes) else str(stored)
        return None
    if sha256(envelope.query) != digest:
        raise Refusal(400, "BAD_REQUEST", "provided sha256Hash does not match the query")
    return digest


async def remember(redis: Any, digest: str, query: str, ttl_seconds: int) -> None:
    await redis.set(APQ_PREFIX + digest, query, ex=ttl_seconds)


async def is_trusted(redis: Any, document: DocumentNode) -> bool:
    """Registered? Compared in printed form (what Apollo's clients send), so spacing and
    comments in the sent text do not matter."""
    return bool(await redis.sismember(TRUSTED_KEY, sha256(print_ast(document))))


def operations_of(text: str) -> list[str]:
    """Each operation of a .graphql file as the client sends it: the operation with the
    fragments it uses, printed (clients such as Apollo's send printed documents)."""
    document: DocumentNode = parse(text)
    fragments = [d for d in document.definitions if not isinstance(d, OperationDefinitionNode)]
    out = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            out.append(print_ast(DocumentNode(definitions=(definition, *fragments))))
    return out


async def register(redis: Any, texts: list[str]) -> list[tuple[str, str]]:
    """Register every operation of the given .graphql texts; (name, sha256) of each."""
    registered = []
    for text in texts:
        for document in operations_of(text):
            digest = sha256(document)
            await redis.sadd(TRUSTED_KEY, digest)
            # Also as an APQ entry without expiry: first-party apps send only the hash.
            await redis.set(APQ_PREFIX + digest, document)
            name = next((d.name.value for d in parse(document).definitions
                         if isinstance(d, OperationDefinitionNode) and d.name), "anonymous")
            registered.append((name, digest))
    return registered
