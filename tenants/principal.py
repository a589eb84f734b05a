"""Who is calling: one shape for JWT users and API-key partner apps."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field

from saas.errors import Forbidden


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
