"""Typed mutation errors (payload `errors`) and query errors (`extensions.code`)."""

from __future__ import annotations

import enum
from collections.abc import Iterator

import strawberry
from asgi_correlation_id import correlation_id
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.relay import GlobalID

from saas import errors as domain


@strawberry.enum
class ErrorCode(enum.Enum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    INVALID_STAGE = "INVALID_STAGE"
    CONFLICT = "CONFLICT"
    VERSION_CONFLICT = "VERSION_CONFLICT"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"


@strawberry.interface(description="An expected failure of a mutation; `code` is stable.")
class UserError:
    code: ErrorCode
    message: str
    field: str | None = None


@strawberry.type(description="A failure without extra data.")
class MutationError(UserError):
    pass


@strawberry.type(description="The deal changed since you read it: here is where it is now.")
class VersionConflictError(UserError):
    current_version: int
    current_stage_id: strawberry.ID | None = None


@strawberry.type(description="Too many attempts: wait `retryAfterSeconds` before the next.")
class RetryLaterError(UserError):
    retry_after_seconds: int


def _stage_gid(stage_id: object) -> strawberry.ID | None:
    return strawberry.ID(str(GlobalID("Stage", str(stage_id)))) if stage_id else None


def user_error(error: domain.DomainError) -> UserError:
    """Map a domain error to its API type (the single place that knows the mapping)."""
    code = ErrorCode(error.code)
    if isinstance(error, domain.VersionConflict):
        return VersionConflictError(
            code=code,
            message=error.message,
            field=error.field,
            current_version=error.details["current_version"],
            current_stage_id=_stage_gid(error.details.get("current_stage_id")),
        )
    if isinstance(error, domain.LimitExceeded) and "retry_after" in error.details:
        return RetryLaterError(code=code, message=error.message, field=error.field,
                               retry_after_seconds=int(error.details["retry_after"]))
    return MutationError(code=code, message=error.message, field=error.field)


class DomainErrors(SchemaExtension):
    """Give domain errors their `extensions.code`; hide unexpected errors' internals."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None) if result is not None else None
        if not errors:
            return
        result.errors = [self._map(e) for e in errors]  # type: ignore[union-attr]

    @staticmethod
    def _map(error: GraphQLError) -> GraphQLError:
        original = error.original_error
        while isinstance(original, GraphQLError) and original.original_error is not None:
            original = original.original_error
        if original is None:  # parse/validation errors are already client-facing
            return error
        if isinstance(original, GraphQLError):  # an input value refused while coercing
            return GraphQLError(
                error.message, error.nodes, error.source, error.positions, error.path,
                extensions={"code": "BAD_USER_INPUT", **(error.extensions or {})},
            )
        if isinstance(original, domain.DomainError):
            extensions = {"code": original.code}
            if original.field:
                extensions["field"] = original.field
            return GraphQLError(
                original.message, error.nodes, error.source, error.positions, error.path,
                extensions=extensions,
            )
        # Logged once with its traceback by schema.edge.logs; the client gets the request
        # id to quote, nothing of the exception.
        return GraphQLError(
            "internal error", error.nodes, error.source, error.positions, error.path,
            extensions={"code": "INTERNAL", "requestId": correlation_id.get()},
        )
