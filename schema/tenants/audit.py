"""The audit trail as a connection for admins (users:admin), newest first, with filters."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import strawberry
from strawberry.scalars import JSON

from schema.context import Info
from schema.nodes import decode_id, gid
from tenants import audit
from tenants.scopes import Scope


@strawberry.type(description="Who did it: a user, an API key, or neither (e.g. a failed "
                             "login of an unknown account).")
class AuditActor:
    user_id: strawberry.ID | None
    api_key_id: strawberry.ID | None


@strawberry.type(description="One security-relevant event; never holds a secret.")
class AuditEvent:
    id: strawberry.ID
    occurred_at: datetime
    action: str = strawberry.field(description="`domain.verb`, e.g. `api_key.revoked`.")
    actor: AuditActor
    target_type: str | None
    target_id: strawberry.ID | None = strawberry.field(
        description="The global id of what the action was about (a User, an ApiKey, ...).")
    address: str | None = strawberry.field(description="The client's address.")
    details: JSON

    @classmethod
    def from_entry(cls, e: audit.Entry) -> AuditEvent:
        return cls(id=strawberry.ID(str(e.id)), occurred_at=e.occurred_at, action=e.action,
                   actor=AuditActor(user_id=gid("User", e.actor_user_id),
                                    api_key_id=gid("ApiKey", e.actor_api_key_id)),
                   target_type=e.target_type,
                   target_id=gid(e.target_type, e.target_id) if e.target_type else None,
                   address=e.address, details=cast(JSON, e.details))


@strawberry.type
class AuditEventEdge:
    cursor: str
    node: AuditEvent


@strawberry.type
class AuditPageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class AuditEventConnection:
    edges: list[AuditEventEdge]
    page_info: AuditPageInfo


@strawberry.input
class AuditFilterInput:
    actions: list[str] | None = None
    actor_user_id: strawberry.ID | None = None
    actor_api_key_id: strawberry.ID | None = None
    target_id: strawberry.ID | None = strawberry.field(
        default=None, description="A global id (User, ApiKey, ...).")
    since: datetime | None = None
    until: datetime | None = None

    def to_filter(self) -> audit.Filter:
        target = None
        if self.target_id:
            from strawberry.relay import GlobalID

            try:
                type_name = GlobalID.from_id(self.target_id).type_name
            except ValueError:
                type_name = "?"
            target = decode_id(self.target_id, type_name, field="filter.targetId")
        return audit.Filter(
            actions=tuple(self.actions or ()),
            actor_user_id=decode_id(self.actor_user_id, "User", field="filter.actorUserId")
            if self.actor_user_id else None,
            actor_api_key_id=decode_id(self.actor_api_key_id, "ApiKey",
                                       field="filter.actorApiKeyId")
            if self.actor_api_key_id else None,
            target_id=target, since=self.since, until=self.until)


@strawberry.type
class AuditQuery:
    @strawberry.field(description="The tenant's audit trail, newest first (users:admin).")
    async def audit_events(self, info: Info, first: int = 50, after: str | None = None,
                           filter: AuditFilterInput | None = None) -> AuditEventConnection:
        principal = info.context.require_principal()
        principal.require(Scope.USERS_ADMIN)
        f = filter.to_filter() if filter else audit.Filter()
        async with info.context.uow() as uow:
            entries, more = await audit.page(uow, filter=f, first=first, after=after)
        edges = [AuditEventEdge(cursor=e.cursor, node=AuditEvent.from_entry(e)) for e in entries]
        return AuditEventConnection(
            edges=edges, page_info=AuditPageInfo(has_next_page=more,
                                                 end_cursor=edges[-1].cursor if edges else None))
