"""One log line per GraphQL error, at the level its cause deserves.

Client errors (syntax, validation, bad input, domain errors such as NOT_FOUND) are ordinary
traffic: INFO, one line, no traceback. Anything else is a bug: ERROR, once, with its
traceback and the request id the client was given.
"""

from __future__ import annotations

import logging

from asgi_correlation_id import correlation_id
from graphql import GraphQLError

from saas.errors import DomainError

log = logging.getLogger("saas.graphql")


def is_unexpected(error: GraphQLError) -> bool:
    """A bug rather than a client's mistake: an exception that is no GraphQL or domain
    error (graphql-core wraps coercion errors in GraphQLErrors, whose cause may be ours)."""
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    return original is not None and not isinstance(original, GraphQLError | DomainError)


def log_errors(errors: list[GraphQLError]) -> None:
    for error in errors:
        if is_unexpected(error):
            log.error("unexpected error: %s", type(error.original_error).__name__,
                      exc_info=error.original_error,
                      extra={"request_id": correlation_id.get(),
                             "path": ".".join(str(p) for p in error.path or ())})
        else:
            code = getattr(error.original_error, "code", None) or "GRAPHQL_REQUEST"
            log.info("client error %s: %s", code, error.message[:200],
                     extra={"path": ".".join(str(p) for p in error.path or ())})
