"""Relay helpers: opaque global ids, decoded to UUIDs of the caller's tenant."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import overload

import strawberry
from strawberry.relay import GlobalID

from saas.errors import NotFound
from tenants.scopes import Scope

# The read rule of every Node type: `node(id)` requires the same scope as the type's own
# queries. A Node type missing here resolves to null (and tests/tenants/test_node_rules.py
# fails until it is added).
NODE_SCOPES: dict[str, Scope] = {
    "Deal": Scope.DEALS_READ, "Activity": Scope.DEALS_READ, "Stage": Scope.DEALS_READ,
    "Pipeline": Scope.DEALS_READ, "Segment": Scope.DEALS_READ, "User": Scope.DEALS_READ,
    "Team": Scope.DEALS_READ,
    "Contact": Scope.CONTACTS_READ, "Company": Scope.CONTACTS_READ,
    "Forecast": Scope.ANALYTICS_READ,
    "Campaign": Scope.CAMPAIGNS_READ, "CampaignEnrollment": Scope.CAMPAIGNS_READ,
    "ApiKey": Scope.USERS_ADMIN,
}


@strawberry.type(description="Where a page of a connection ends (Relay).")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


def global_id(type_name: str, id: uuid.UUID) -> GlobalID:
    return GlobalID(type_name, str(id))


@overload
def gid(type_name: str, id: uuid.UUID) -> strawberry.ID: ...
@overload
def gid(type_name: str, id: uuid.UUID | None) -> strawberry.ID | None: ...
def gid(type_name: str, id: uuid.UUID | None) -> strawberry.ID | None:
    """The opaque global id of a row, as the API shows it (None stays None)."""
    return strawberry.ID(str(GlobalID(type_name, str(id)))) if id else None


def decode_id(value: str | GlobalID, expected: str | Iterable[str], *, field: str) -> uuid.UUID:
    """A global id of the expected type -> its UUID; anything else is 'not found'."""
    names = {expected} if isinstance(expected, str) else set(expected)
    try:
        gid = value if isinstance(value, GlobalID) else GlobalID.from_id(value)
        if gid.type_name not in names:
            raise ValueError(gid.type_name)
        return uuid.UUID(gid.node_id)
    except (ValueError, TypeError) as e:
        kind = "/".join(sorted(names))
        raise NotFound(f"{kind} not found", field=field) from e
