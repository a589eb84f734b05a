"""Who is calling: one shape for JWT users and API-key partner apps."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field

from saas.errors import Forbidden
from tenants import scopes as granted_scopes


class Role(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    REP = "rep"


class Scope(enum.StrEnum):
    READ = "read"
    READ_WRITE = "read_write"


@dataclass(frozen=True)
class Principal:
    """Verified identity: the tenant always comes from here, never from client input."""

    tenant_id: uuid.UUID
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    role: Role | None = None
    team_id: uuid.UUID | None = None
    scopes: frozenset[Scope] = field(default_factory=frozenset)

    @property
    def is_api_key(self) -> bool:
        return self.api_key_id is not None

    @property
    def can_write(self) -> bool:
        return not self.is_api_key or Scope.READ_WRITE in self.scopes

    @property
    def granted(self) -> frozenset[granted_scopes.Scope]:
        """The fine-grained scopes this principal holds (tenants/scopes.py)."""
        if self.is_api_key:
            return granted_scopes.expand(frozenset(s.value for s in self.scopes))
        return granted_scopes.ROLE_SCOPES.get(self.role.value if self.role else "", frozenset())

    def has(self, scope: granted_scopes.Scope) -> bool:
        return scope in self.granted

    def require(self, scope: granted_scopes.Scope) -> None:
        """Raise FORBIDDEN unless this principal holds `scope`."""
        if scope in self.granted:
            return
        if self.is_api_key:
            raise Forbidden(f"this API key lacks the scope {scope.value!r}")
        role = self.role.value if self.role else "none"
        raise Forbidden(f"your role ({role}) does not allow this (needs {scope.value!r})")

    def require_write(self) -> None:
        if not self.can_write:
            raise Forbidden("this API key is read-only; a read_write key is needed to mutate")

    def require_role(self, *roles: Role) -> None:
        """Users must hold one of `roles`; read-write API keys act with admin rights."""
        self.require_write()
        if self.is_api_key:
            return
        if self.role not in roles:
            names = ", ".join(r.value for r in roles)
            raise Forbidden(f"this operation needs one of the roles: {names}")
