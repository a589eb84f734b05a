"""The composed schema: every domain's Query/Mutation/Subscription, plus limits and caches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import strawberry
from graphql import ASTValidationRule, GraphQLError, ValidationContext, specified_rules
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter
from strawberry.extensions.base_extension import SchemaExtension
from strawberry.relay import GlobalID, Node
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from saas.settings import Settings
from schema.analytics.api import AnalyticsQuery
from schema.analytics.targets import TargetsMutation
from schema.campaigns.api import CampaignsMutation, CampaignsQuery
from schema.campaigns.lifecycle import CampaignLifecycleMutation
from schema.compiled.extension import CompiledReads
from schema.contacts.api import ContactsMutation, ContactsQuery
from schema.context import Info
from schema.currency.api import CurrencyMutation, CurrencyQuery
from schema.deals.api import DealsMutation, DealsQuery
from schema.deals.lifecycle import ActivityLifecycleMutation, DealLifecycleMutation
from schema.edge import scalars
from schema.edge.documents import Documents
from schema.edge.extension import EdgeDocuments
from schema.edge.logs import log_errors
from schema.errors import DomainErrors, MutationError, RetryLaterError, VersionConflictError
from schema.forecasting.api import (
    ForecastingMutation,
    ForecastingQuery,
    ForecastingSubscription,
)
from schema.forecasting.planning import PlanningQuery
from schema.imports.api import ImportsMutation, ImportsQuery, ImportsSubscription
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
from schema.webhooks.api import WebhooksMutation, WebhooksQuery
from schema.write_gate import write_gate

QUERIES: tuple[type, ...] = (TenantsQuery, PipelinesQuery, DealsQuery, ContactsQuery,
                             AnalyticsQuery, ForecastingQuery, CampaignsQuery, AuditQuery,
                             PrivacyQuery, ConfigurationQuery, PlanningQuery, CurrencyQuery,
                             WebhooksQuery, ImportsQuery)
MUTATIONS: tuple[type, ...] = (SessionsMutation, AdminMutation, PipelinesMutation, DealsMutation,
                               DealLifecycleMutation, ContactsMutation,
                               ForecastingMutation, CampaignsMutation, PrivacyMutation,
                               ActivityLifecycleMutation, ConfigurationMutation, TeamsMutation,
                               CampaignLifecycleMutation, TargetsMutation, CurrencyMutation,
                               WebhooksMutation, ImportsMutation)
SUBSCRIPTIONS: tuple[type, ...] = (LiveSubscription, ForecastingSubscription,
                                    ImportsSubscription)


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


class Schema(strawberry.Schema):
    """The schema, with the edge's documents and one log line per error at its level."""

    documents: Documents

    def process_errors(self, errors: list[GraphQLError],
                       execution_context: ExecutionContext | None = None) -> None:
        log_errors(errors)


def _depth_rules(max_depth: int) -> list[type[ASTValidationRule]]:
    """Strawberry's depth limit, except on a document that spreads a fragment it does not
    define: its rule looks every spread up (`fragments[name]`, a KeyError: HTTP 500, even
    for an anonymous caller), and graphql-core's KnownFragmentNames already reports the
    document as invalid."""

    def guarded(rule: type[ASTValidationRule]) -> type[ASTValidationRule]:
        class Guarded(rule):  # type: ignore[valid-type,misc]
            def __init__(self, context: ValidationContext) -> None:
                try:
                    super().__init__(context)
                except KeyError:  # an undefined fragment: not this rule's to report
                    ASTValidationRule.__init__(self, context)

        Guarded.__name__ = f"Guarded{rule.__name__}"
        return Guarded

    return [guarded(r) for r in QueryDepthLimiter(max_depth=max_depth).validation_rules]


def validation_rules(settings: Settings) -> list[type[ASTValidationRule]]:
    """graphql-core's rules, Strawberry's, the depth and alias limits, and no introspection
    where it is off."""
    rules: list[type[ASTValidationRule]] = [
        *specified_rules, MaybeNullValidationRule, OneOfInputValidationRule,
        *_depth_rules(settings.graphql_max_depth),
        *MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases).validation_rules,
    ]
    if not settings.introspection_enabled:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules


def build_schema(settings: Settings) -> Schema:
    """One schema per process; production turns introspection and suggestions off."""
    # Factories, not instances: extensions hold per-request state. Parsing, validation and
    # their caches are the edge's (schema.edge.documents), for HTTP and websockets alike.
    edge_documents: type[EdgeDocuments] = type("BoundEdgeDocuments", (EdgeDocuments,), {})
    extensions: list[Callable[[], SchemaExtension]] = [
        Observe,  # first, so it sees errors after DomainErrors mapped them
        DomainErrors,
        edge_documents,
        write_gate(settings.db_pool_size // 2),
    ]
    if settings.compiled_reads:
        extensions.append(CompiledReads)  # last: it answers at the execution step
    query = merge_types("Query", (_node_query(), *QUERIES))
    mutation = merge_types("Mutation", MUTATIONS)
    subscription = merge_types("Subscription", SUBSCRIPTIONS)
    schema = Schema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        extensions=extensions,
        types=[MutationError, VersionConflictError, RetryLaterError],
        scalar_overrides=scalars.overrides(),
        config=StrawberryConfig(disable_field_suggestions=not settings.is_dev),
    )
    schema.documents = Documents(
        schema._schema, validation_rules(settings), max_tokens=settings.graphql_max_tokens,
        max_length=settings.max_body_bytes, max_bytes=settings.document_cache_bytes,
        max_string_length=settings.max_string_length,
        hide_suggestions=not settings.is_dev)
    edge_documents.documents = schema.documents
    return schema
