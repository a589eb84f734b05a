"""The domain's error vocabulary, each with a stable code the API exposes.

    DomainError                      code
    ├── Unauthenticated              UNAUTHENTICATED   no, bad, expired or revoked credentials
    ├── Forbidden                    FORBIDDEN         authenticated, but not allowed to do this
    ├── NotFound                     NOT_FOUND         unknown id, or another tenant's id
    ├── ValidationFailed             VALIDATION_FAILED bad input; `field` names it
    │   └── InvalidStage             INVALID_STAGE     not a stage of this pipeline
    ├── Conflict                     CONFLICT          a uniqueness or state rule was violated
    │   └── VersionConflict          VERSION_CONFLICT  stale expectedVersion; has the current one
    └── LimitExceeded                LIMIT_EXCEEDED    a page size, a quota or a rate limit

Services raise these; the API maps them to typed errors (mutations) or GraphQL errors
with `extensions.code` (queries). Anything else is a bug and is reported as INTERNAL.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every expected failure; `code` is stable and part of the API."""

    code = "DOMAIN_ERROR"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class NotFound(DomainError):
    code = "NOT_FOUND"


class ValidationFailed(DomainError):
    code = "VALIDATION_FAILED"


class InvalidStage(ValidationFailed):
    code = "INVALID_STAGE"


class Conflict(DomainError):
    code = "CONFLICT"


class VersionConflict(Conflict):
    code = "VERSION_CONFLICT"


class LimitExceeded(DomainError):
    code = "LIMIT_EXCEEDED"
