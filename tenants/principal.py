"""Who is calling: one shape for JWT users and API-key partner apps."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from saas.errors import Forbidden
from tenants import scopes as granted_scopes


class Role(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    REP = "rep"


class Scope(enum.StrEnum):
    """The scope aliases `read` and `read_write` (tenants/scopes.py expands them); kept so
    callers may still name a key's grant by alias."""

    READ = "read"
    READ_WRITE = "read_write"


@dataclass(frozen=True)
class Principal:
    """Verified identity: the tenant always comes from here, never from client input.

    `scopes` is what an API key was given (scope names or aliases); users hold their role's
    scopes (tenants/scopes.py ROLE_SCOPES). `granted` is the expanded set, computed once.
    """

    tenant_id: uuid.UUID
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    role: Role | None = None
    team_id: uuid.UUID | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    session_id: uuid.UUID | None = None  # the login session of a self-issued access token
    expires_at: float | None = None  # when the credential stops being valid (epoch seconds)
    address: str | None = None  # the client's address, for audit entries
    _granted: frozenset[granted_scopes.Scope] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.api_key_id is not None:
            granted = granted_scopes.expand(frozenset(str(s) for s in self.scopes))
        else:
            granted = granted_scopes.ROLE_SCOPES.get(self.role.value if self.role else "",
                                                     frozenset())
        object.__setattr__(self, "_granted", granted)

    @property
    def is_api_key(self) -> bool:
        return self.api_key_id is not None

    @property
    def granted(self) -> frozenset[granted_scopes.Scope]:
        """The fine-grained scopes this principal holds (tenants/scopes.py)."""
        return self._granted

    def has(self, scope: granted_scopes.Scope) -> bool:
        return scope in self._granted

    def require(self, scope: granted_scopes.Scope) -> None:
        """Raise FORBIDDEN unless this principal holds `scope`."""
        if scope in self._granted:
            return
        if self.is_api_key:
            raise Forbidden(f"this API key lacks the scope {scope.value!r}")
        role = self.role.value if self.role else "none"
        raise Forbidden(f"your role ({role}) does not allow this (needs {scope.value!r})")

    def require_all(self, wanted: Iterable[granted_scopes.Scope], *, what: str,
                    field: str | None = None) -> None:
        """FORBIDDEN unless this principal holds every scope in `wanted`: nobody grants (to a
        key, a user or a role) what they do not hold themselves."""
        missing = sorted(s.value for s in set(wanted) - self._granted)
        if missing:
            raise Forbidden(f"you cannot grant {what} scopes you do not hold: "
                            f"{', '.join(missing)}", field=field)
