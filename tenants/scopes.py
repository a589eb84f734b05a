"""What a credential may do: scopes per domain and verb, their aliases, and each role's set.

    scope             grants
    deals:read        deals, the board, stage events, activities, pipeline configuration
                      (segments, stages, custom field definitions), live deal subscriptions,
                      the user and team directory (deals refer to them)
    deals:write       create, update, move, transfer, archive, restore and bulk-update
                      deals; activities; markReplied
    contacts:read     contacts and companies
    contacts:write    create, update, delete and merge contacts and companies
    pipelines:write   segments, pipelines, stages, custom field definitions      (admin)
    analytics:read    pipeline analytics, stale deals, plan-fact, forecasts and their accuracy
    forecasts:write   request a forecast
    targets:write     set and delete plan targets
    campaigns:read    campaigns, their enrollments and results
    campaigns:write   create, update, pause, resume, archive campaigns
    webhooks:write    manage webhook endpoints, read and redeliver deliveries     (admin)
    imports:write     bulk imports                                               (admin)
    exports:read      bulk exports of everything the tenant holds                (admin)
    privacy:admin     erase a person's data, export a person's data, delete a    (admin)
                      deal permanently
    users:admin       managing users, teams, invitations, API keys, tenant settings; the
                      audit trail                                                (admin)

Aliases: `read` = every `:read` scope but `exports:read`; `read_write` = `read` plus the
non-admin writes; `admin` = everything. Roles: admin users hold `admin`; managers
`read_write`; reps `read_write` without `targets:write` and `campaigns:write`. Row rules
(a rep edits only their own deals, a manager their team's) apply on top of scopes
(`saas/deals/permissions.py`).
"""

from __future__ import annotations

import enum


class Scope(enum.StrEnum):
    DEALS_READ = "deals:read"
    DEALS_WRITE = "deals:write"
    CONTACTS_READ = "contacts:read"
    CONTACTS_WRITE = "contacts:write"
    PIPELINES_WRITE = "pipelines:write"
    ANALYTICS_READ = "analytics:read"
    FORECASTS_WRITE = "forecasts:write"
    TARGETS_WRITE = "targets:write"
    CAMPAIGNS_READ = "campaigns:read"
    CAMPAIGNS_WRITE = "campaigns:write"
    WEBHOOKS_WRITE = "webhooks:write"
    IMPORTS_WRITE = "imports:write"
    EXPORTS_READ = "exports:read"
    PRIVACY_ADMIN = "privacy:admin"
    USERS_ADMIN = "users:admin"


READ: frozenset[Scope] = frozenset(
    {Scope.DEALS_READ, Scope.CONTACTS_READ, Scope.ANALYTICS_READ, Scope.CAMPAIGNS_READ}
)
READ_WRITE: frozenset[Scope] = READ | {
    Scope.DEALS_WRITE, Scope.CONTACTS_WRITE, Scope.FORECASTS_WRITE, Scope.TARGETS_WRITE,
    Scope.CAMPAIGNS_WRITE,
}
ADMIN: frozenset[Scope] = frozenset(Scope)
# The scopes only an explicit grant (or the admin role) gives: never part of read_write.
ADMIN_ONLY: frozenset[Scope] = ADMIN - READ_WRITE

ALIASES: dict[str, frozenset[Scope]] = {"read": READ, "read_write": READ_WRITE, "admin": ADMIN}

ROLE_SCOPES: dict[str, frozenset[Scope]] = {
    "admin": ADMIN,
    "manager": READ_WRITE,
    "rep": READ_WRITE - {Scope.TARGETS_WRITE, Scope.CAMPAIGNS_WRITE},
}


def expand(names: list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[Scope]:
    """Scope names and aliases -> the scopes they grant; ValueError names an unknown one."""
    granted: set[Scope] = set()
    for name in names:
        if name in ALIASES:
            granted |= ALIASES[name]
        else:
            try:
                granted.add(Scope(name))
            except ValueError as e:
                raise ValueError(f"unknown scope {name!r}") from e
    return frozenset(granted)
