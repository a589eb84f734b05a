"""The composed schema: every domain's Query/Mutation/Subscription, plus limits and caches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.extensions.base_extension import SchemaExtension
from strawberry.relay import GlobalID, Node
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from saas.settings import Settings
from schema.analytics.api import AnalyticsMutation, AnalyticsQuery
from schema.analytics.targets import TargetsMutation
from schema.campaigns.api import CampaignsMutation, CampaignsQuery
from schema.campaigns.lifecycle import CampaignLifecycleMutation
from schema.contacts.api import ContactsMutation, ContactsQuery
from schema.context import Info
from schema.deals.api import DealsMutation, DealsQuery
from schema.deals.lifecycle import ActivityLifecycleMutation, DealLifecycleMutation
from schema.errors import DomainErrors, MutationError, RetryLaterError, VersionConflictError
from schema.forecasting.api import (
    ForecastingMutation,
    ForecastingQuery,
    ForecastingSubscription,
)
from schema.live.api import LiveSubscription
from schema.nodes import NODE_SCOPES
from schema.observability import Observe
from schema.pipelines.api import PipelinesMutation, PipelinesQuery
from schema.pipelines.configuration import ConfigurationMutation, ConfigurationQuery
from schema.privacy.api import PrivacyMutation, PrivacyQuery
from schema.tenants.admin import AdminMutation
from schema.tenants.audit import AuditQuery
from schema.tenants.mutations import SessionsMutation
from schema.tenants.queries import TenantsQuery
from schema.tenants.teams import TeamsMutation

QUERIES: tuple[type, ...] = (TenantsQuery, PipelinesQuery, DealsQuery, ContactsQuery,
                             AnalyticsQuery, ForecastingQuery, CampaignsQuery, AuditQuery,
                             PrivacyQuery, ConfigurationQuery)
MUTATIONS: tuple[type, ...] = (SessionsMutation, AdminMutation, PipelinesMutation, DealsMutation,
                               DealLifecycleMutation, ContactsMutation, AnalyticsMutation,
                               ForecastingMutation, CampaignsMutation, PrivacyMutation,
                               ActivityLifecycleMutation, ConfigurationMutation, TeamsMutation,
                               CampaignLifecycleMutation, TargetsMutation)
SUBSCRIPTIONS: tuple[type, ...] = (LiveSubscription, ForecastingSubscription)


def _node_query() -> type:
    @strawberry.type
    class NodeQuery:
        @strawberry.field(description="Any object of the caller's tenant by global id; others "
                                      "are null. Needs the scope the type's own queries need.")
        async def node(self, info: Info,
                       id: Annotated[strawberry.ID, strawberry.argument(
                           description="The ID of the object.")]) -> Node | None:
            principal = info.context.require_principal()
            try:
                global_id = GlobalID.from_id(id)
            except ValueError:
                return None
            scope = NODE_SCOPES.get(global_id.type_name)
            if scope is None:
                return None
            principal.require(scope)  # before the lookup: no existence oracle
            try:
                node: Node | None = await global_id.resolve_node(info, required=False)
            except ValueError:  # not a uuid
                return None
            return node

    return NodeQuery


def build_schema(settings: Settings) -> strawberry.Schema:
    """One schema per process; production turns introspection and suggestions off."""
    limit_rules = [
        *QueryDepthLimiter(max_depth=settings.graphql_max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases).validation_rules,
    ]
    # Factories, not instances: extensions hold per-request state. The caches live at
    # module level in strawberry, so they are shared across requests anyway.
    extensions: list[Callable[[], SchemaExtension]] = [
        Observe,  # first, so it sees errors after DomainErrors mapped them
        DomainErrors,
        # The limiters' rule classes are built once: a new class per request would make
        # every validation a cache miss (the cache keys on the rules).
        lambda: AddValidationRules(limit_rules),
        lambda: MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
        lambda: ParserCache(maxsize=1024),
        lambda: ValidationCache(maxsize=1024),
    ]
    if not settings.introspection_enabled:
        extensions.append(DisableIntrospection)
    query = merge_types("Query", (_node_query(), *QUERIES))
    mutation = merge_types("Mutation", MUTATIONS)
    subscription = merge_types("Subscription", SUBSCRIPTIONS)
    return strawberry.Schema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        extensions=extensions,
        types=[MutationError, VersionConflictError, RetryLaterError],
        config=StrawberryConfig(disable_field_suggestions=not settings.is_dev),
    )
