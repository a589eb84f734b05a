"""GraphQL over HTTP: one path decides every request, then GraphQL or the cache answers.

    request -> media type (Accept) -> envelope (method, content type, body cap and timeout,
    JSON shape) -> credentials -> document (tokens, shape, validation; cached for
    authenticated callers) -> operation (operationName rules, GET only for queries)
    -> variables (coerced, each error with its path) -> board cache or execution

Refusals before GraphQL carry their HTTP status (400, 405, 406, 408, 413, 415). A request
that is well formed but cannot run (parse, validation, variable coercion) is answered 400
under `application/graphql-response+json` and 200 under `application/json`, without `data`.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, OperationDefinitionNode, OperationType
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import Response
from strawberry.http import process_result
from strawberry.http.temporal_response import TemporalResponse
from strawberry.types.graphql import OperationType as StrawberryOperationType

from saas.observability import context as observed
from saas.observability.metrics import GRAPHQL_DURATION, operation_label
from schema import idempotency, throttling
from schema.context import Context
from schema.cost import Cost, estimate, fragments_of
from schema.edge import media, persisted, variables
from schema.edge.documents import Document, DocumentErrors, Documents
from schema.edge.envelope import Envelope, Limits, Refusal, from_request
from schema.response_cache import RESPONSE_CACHE, Cacheable, ResponseCache, pipeline_of
from tenants.scopes import Scope

if TYPE_CHECKING:
    from saas.app import GraphQLApp

DISCONNECTS = Counter("saas_graphql_client_gone_total",
                      "HTTP GraphQL requests whose client went away before the answer (their "
                      "work was cancelled)")
KIND_CODES = {"parse": "GRAPHQL_PARSE_FAILED", "validation": "GRAPHQL_VALIDATION_FAILED",
              "operation": "OPERATION_RESOLUTION_FAILURE"}
ALLOWED = {"GET": frozenset({StrawberryOperationType.QUERY}),
           "POST": frozenset({StrawberryOperationType.QUERY, StrawberryOperationType.MUTATION})}


class HTTPEdge:
    """The HTTP side of the GraphQL endpoint (websockets stay with Strawberry's view)."""

    def __init__(self, view: GraphQLApp, documents: Documents, limits: Limits,
                 cache: ResponseCache | None, max_cost: int, deadline: float = 30.0,
                 anonymous_max_tokens: int = 200, anonymous_max_length: int = 10_000) -> None:
        self.view = view
        self.anonymous_max_length = anonymous_max_length
        self.max_cost = max_cost
        self.deadline = deadline
        self.anonymous_max_tokens = anonymous_max_tokens
        self.documents = documents
        self.limits = limits
        self.cache = cache

    async def handle(self, request: Request) -> Response:
        chosen = media.negotiate(request.headers.get("accept"))
        if chosen is None:
            return media.respond(media.JSON, 406, media.error_body(
                f"send 'Accept: {media.GRAPHQL_RESPONSE}' or '{media.JSON}'", "NOT_ACCEPTABLE"))
        if (request.method == "GET" and self.view.graphql_ide
                and "query" not in request.query_params
                and "text/html" in request.headers.get("accept", "")):
            return await self.view.render_graphql_ide(request)
        try:
            envelope = await from_request(request, self.limits)
            if "persistedQuery" in envelope.extensions:
                envelope.persist_hash = await persisted.resolve(
                    envelope, self.view.services.redis, self.view.services.settings.apq_ttl_seconds)
            if envelope.query is None:
                raise Refusal(400, "BAD_REQUEST", "the request has no 'query'")
        except Refusal as refusal:
            return self.refuse(chosen, refusal)
        except persisted.NotPersisted as e:
            return self.request_errors(chosen, [GraphQLError(e.message)], e.code)
        sub_response = TemporalResponse()
        context = await self.view.get_context(request, sub_response)
        return await self.guarded(request, chosen,
                                  self.run(request, chosen, envelope, context, sub_response))

    async def guarded(self, request: Request, chosen: str,
                      work: Coroutine[Any, Any, Response]) -> Response:
        """Run `work` until it is done, the client goes away (its work is cancelled then,
        database statements included) or the request deadline passes (504)."""
        ctx = contextvars.copy_context()
        task = asyncio.get_running_loop().create_task(work, context=ctx)
        # The work is cancelled as soon as the disconnect is read, not when this coroutine
        # wakes: on a loop busy with a request's thousands of resolver steps each hop is a
        # loop iteration (tens of ms), and the work goes on meanwhile.
        gone = asyncio.ensure_future(_disconnected(request, task))
        try:
            done, _ = await asyncio.wait({task, gone}, timeout=self.deadline,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if task.done() and not task.cancelled():  # it finished before any cancel landed
            _adopt(ctx)
            return task.result()
        if gone not in done:
            # The deadline. Never a second cancel after the disconnect's: it would interrupt
            # asyncpg's own clean-up of the first (the server-side cancel of a waiting
            # statement was lost: it ran on until statement_timeout).
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # its cleanup, connections back
        _adopt(ctx)
        if gone in done:
            DISCONNECTS.inc()
            return Response(status_code=499)  # nobody reads it; the access log does
        return media.respond(chosen, 504, media.error_body(
            f"the request took longer than {self.deadline:g} s and was stopped",
            "DEADLINE_EXCEEDED"))

    def refuse(self, chosen: str, refusal: Refusal) -> Response:
        # Bad variable values are coercion failures: the status depends on the media type.
        status = (media.request_error_status(chosen) if refusal.code == "BAD_USER_INPUT"
                  else refusal.status)
        return media.respond(chosen, status,
                             media.error_body(refusal.message, refusal.code,
                                              **refusal.extensions), refusal.headers)

    def request_errors(self, chosen: str, errors: list[GraphQLError], code: str,
                       status: int | None = None,
                       headers: dict[str, str] | None = None) -> Response:
        formatted = []
        for error in errors:
            item = error.formatted
            item["extensions"] = {"code": code, **(error.extensions or {})}
            formatted.append(item)
        return media.respond(chosen, status or media.request_error_status(chosen),
                             media.encode({"errors": formatted}), headers)

    async def run(self, request: Request, chosen: str, envelope: Envelope, context: Context,
                  sub_response: TemporalResponse) -> Response:
        assert envelope.query is not None
        try:
            # Anonymous callers can only log in and the like: small documents, so their
            # parsing cannot take the event loop for long (the cache is not theirs either).
            anonymous = context.principal is None
            document = await self.documents.prepare_off_loop(
                envelope.query, anonymous=anonymous,
                max_tokens=self.anonymous_max_tokens if anonymous else None,
                max_length=self.anonymous_max_length if anonymous else None)
            operation = document.operation(envelope.operation_name)
        except DocumentErrors as e:
            return self.request_errors(chosen, e.errors, KIND_CODES[e.kind])
        settings = self.view.services.settings
        if envelope.persist_hash is not None:
            await persisted.remember(self.view.services.redis, envelope.persist_hash,
                                     envelope.query, settings.apq_ttl_seconds)
        if (settings.trusted_documents
                and (context.principal is None or not context.principal.is_api_key)
                and not await persisted.is_trusted(self.view.services.redis, document.node)):
            return self.request_errors(chosen, [GraphQLError(
                "only registered operations run for this app: register its documents with "
                "'saas documents register'")], "TRUSTED_DOCUMENT_REQUIRED", status=400)
        if operation.operation == OperationType.SUBSCRIPTION:
            return self.request_errors(chosen, [GraphQLError(
                "subscriptions run over the websocket (graphql-transport-ws) at this path")],
                "OPERATION_NOT_ALLOWED", status=400)
        if envelope.method == "GET" and operation.operation != OperationType.QUERY:
            return self.request_errors(chosen, [GraphQLError(
                "mutations are not allowed over GET: send a POST")],
                "METHOD_NOT_ALLOWED", status=405, headers={"Allow": "POST"})
        problems = variables.check(self.documents.schema, operation, envelope.variables,
                                   hide_suggestions=self.documents.hide_suggestions)
        if problems:
            return self.request_errors(chosen, problems, "BAD_USER_INPUT")
        context.cost = cost = self.cost(document, operation, envelope.variables)
        if cost.exceeded:
            return self.request_errors(chosen, [cost_error(cost)], "LIMIT_EXCEEDED")
        if not anonymous:
            self.documents.remember(document)
        context.document = document
        limited = await self.throttle(chosen, context, sub_response)
        if limited is not None:
            return limited
        if (operation.operation == OperationType.MUTATION and context.principal is not None
                and idempotency.HEADER in request.headers):
            return await self.idempotent(request, chosen, envelope, operation, context,
                                         sub_response)
        # An entry is the tenant's board: only a caller allowed to read boards is served one
        # (anyone else gets the resolvers' scope error).
        if (self.cache is not None and context.principal is not None
                and context.principal.has(Scope.DEALS_READ)
                and (doc := self.cache.is_cacheable(document.sha256, document.node,
                                                    operation)) is not None):
            return await self.cached(request, chosen, envelope, document, doc, context,
                                     sub_response)
        status, body = await self.execute(envelope, operation, context, sub_response)
        return self.answer(chosen, envelope, context, status, body, sub_response)

    async def throttle(self, chosen: str, context: Context,
                       sub_response: TemporalResponse) -> Response | None:
        """Spend the operation's cost from its buckets; a refusal when they cannot pay."""
        refusal = await throttling.spend(context)
        if refusal is None:
            if context.throttle is not None:
                sub_response.headers.update(context.throttle.headers())
            return None
        status, code, message, extensions, headers = refusal
        if status == 0:
            return self.request_errors(chosen, [GraphQLError(message, extensions=extensions)],
                                       code)
        return media.respond(chosen, status, media.error_body(message, code, **extensions),
                             headers)

    async def idempotent(self, request: Request, chosen: str, envelope: Envelope,
                         operation: OperationDefinitionNode, context: Context,
                         sub_response: TemporalResponse) -> Response:
        """A mutation with an Idempotency-Key: run once per key (schema/idempotency.py)."""
        settings = context.settings

        async def run() -> Response:
            status, body = await self.execute(envelope, operation, context, sub_response)
            return self.answer(chosen, envelope, context, status, body, sub_response)

        try:
            status, body, replayed = await idempotency.once(
                context, key_header=request.headers[idempotency.HEADER], query=envelope.query,
                operation_name=envelope.operation_name, variables=envelope.variables, run=run,
                ttl_seconds=settings.idempotency_ttl_seconds,
                wait_seconds=settings.idempotency_wait_seconds)
        except idempotency.Refused as e:
            return media.respond(chosen, e.status, media.error_body(e.message, e.code),
                                 e.headers)
        return media.respond(chosen, status, body,
                             {"Idempotent-Replayed": "true"} if replayed else None)

    def cost(self, document: Document, operation: OperationDefinitionNode,
             values: dict[str, Any]) -> Cost:
        requested = estimate(self.documents.schema, operation,
                             fragments_of(document.node.definitions), values)
        return Cost(requested=requested, limit=self.max_cost)

    async def execute(self, envelope: Envelope, operation: OperationDefinitionNode,
                      context: Context, sub_response: TemporalResponse,
                      ) -> tuple[int | None, dict[str, Any]]:
        """Run the operation; (None, result) when it ran, (status, errors) when it could not
        (a request error found only during execution)."""
        result = await self.view.schema.execute(
            envelope.query, variable_values=envelope.variables, context_value=context,
            operation_name=envelope.operation_name,
            allowed_operation_types=ALLOWED[envelope.method],
            operation_extensions=envelope.extensions)
        payload: dict[str, Any] = dict(process_result(result))
        if context.cost is not None:
            payload["extensions"] = {**(payload.get("extensions") or {}),
                                     "cost": {**context.cost.as_extension(),
                                              **await throttling.settle(context,
                                                                        payload.get("data"))}}
        if result.data is None and result.errors and all(e.path is None
                                                          for e in result.errors):
            payload.pop("data", None)  # a request error: the operation never started
            return 0, payload
        return None, payload

    def answer(self, chosen: str, envelope: Envelope, context: Context, status: int | None,
               payload: dict[str, Any], sub_response: TemporalResponse) -> Response:
        code = (media.request_error_status(chosen) if status == 0
                else sub_response.status_code or 200)
        headers = dict(sub_response.headers)
        if envelope.method == "GET":
            headers.update(cache_headers(context, errors="errors" in payload))
        return media.respond(chosen, code, media.encode(payload), headers)

    async def cached(self, request: Request, chosen: str, envelope: Envelope,
                     document: Document, doc: Cacheable, context: Context,
                     sub_response: TemporalResponse) -> Response:
        """A board query: from the response cache while the tenant's board version is
        unchanged; every check above has already passed for this request."""
        cache = self.cache
        assert cache is not None and context.principal is not None
        operation = document.operation(envelope.operation_name)
        start = time.perf_counter()
        tenant_id = context.principal.tenant_id
        key = cache.key(tenant_id, document.sha256, envelope.operation_name,
                        envelope.variables)
        rendering = None
        async with cache.enter(tenant_id) as lease:
            version = await lease.version(pipeline_of(doc, envelope.variables))
            body = cache.get(key, version)
            if body is None and (rendering := cache.inflight(key, version)) is None:
                RESPONSE_CACHE.labels("miss").inc()
                cache.lead(key, version)
                rendered = None
                try:
                    # Rendered after the version was read, so its data is at least as new
                    # as that version (the entry's).
                    context.pinned_uow = await lease.render()
                    status, payload = await self.execute(envelope, operation, context,
                                                         sub_response)
                    if status is None and "errors" not in payload:
                        rendered = media.encode(payload)
                finally:
                    context.pinned_uow = None
                    cache.finish(key, version, rendered)
                if rendered is not None:
                    return self.answer_bytes(chosen, envelope, context, rendered)
                return self.answer(chosen, envelope, context, status, payload, sub_response)
        if body is None and rendering is not None:  # another request is rendering it
            body = await asyncio.shield(rendering)
            if body is None:  # it failed: answer this one on its own
                status, payload = await self.execute(envelope, operation, context,
                                                     sub_response)
                return self.answer(chosen, envelope, context, status, payload, sub_response)
        assert body is not None
        RESPONSE_CACHE.labels("hit").inc()
        label = operation_label(envelope.operation_name)
        observed.operation.set(label)
        GRAPHQL_DURATION.labels(label, "query").observe(time.perf_counter() - start)
        return self.answer_bytes(chosen, envelope, context, body)

    def answer_bytes(self, chosen: str, envelope: Envelope, context: Context,
                     body: bytes) -> Response:
        headers = cache_headers(context) if envelope.method == "GET" else {}
        return media.respond(chosen, 200, body, headers)


async def _disconnected(request: Request, work: asyncio.Task[Response]) -> None:
    """Cancels `work` and returns when the client has gone (the body was read: the next
    message is that)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    work.cancel()


def _adopt(ctx: contextvars.Context) -> None:
    """The request's log fields as the work set them (it ran in its own context)."""
    observed.operation.set(ctx.get(observed.operation))
    observed.tenant_id.set(ctx.get(observed.tenant_id))


def cost_error(cost: Cost) -> GraphQLError:
    return GraphQLError(
        f"the operation may return {cost.requested} objects, more than the limit of "
        f"{cost.limit}: ask for fewer (smaller 'first', fewer nested lists)",
        extensions={"cost": cost.as_extension()})


def cache_headers(context: Context, *, errors: bool = False) -> dict[str, str]:
    """GET answers: a shared cache may keep what is not per caller and has no errors."""
    if context.principal is None and context.auth_error is None and not errors:
        return {"Cache-Control": "public, max-age=60", "Vary": "Accept, Authorization"}
    return {"Cache-Control": "private, no-store", "Vary": "Accept, Authorization, X-API-Key"}


