"""The ASGI app (composition root): Starlette routes, GraphQL over HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from asgi_correlation_id import CorrelationIdMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET

from saas import webapp
from saas.campaigns import unsubscribe
from saas.db import Database, create_engine
from saas.errors import Unauthenticated
from saas.live.factory import build_hub
from saas.observability import context as observed
from saas.observability import tracing
from saas.observability.access import AccessLog
from saas.observability.metrics import GRAPHQL_DURATION, operation_label
from saas.settings import Settings, get_settings
from schema.context import Context, Services
from schema.live.revocation import Connections
from schema.live.transport import LiveTransportWSHandler
from schema.response_cache import RESPONSE_CACHE, ResponseCache
from schema.root import build_schema
from tenants.credentials import Authenticator
from tenants.throttle import LoginThrottle
from tenants.tokens import check_config

log = logging.getLogger("saas.app")


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI view with our context and websocket authentication."""

    # Live events are rendered once per selection and sent as text frames (schema.live).
    graphql_transport_ws_handler_class = LiveTransportWSHandler

    def __init__(self, services: Services) -> None:
        settings = services.settings
        super().__init__(
            build_schema(settings),
            graphql_ide="graphiql" if settings.is_dev else None,
            allow_queries_via_get=False,
            keep_alive=True,
            keep_alive_interval=settings.ws_keepalive_seconds,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
            allowed_origins=settings.allowed_origins,
        )
        self.services = services
        self.cache = (
            ResponseCache(self.schema._schema, services.db,  # type: ignore[attr-defined]
                          max_entries=settings.board_cache_entries,
                          max_entry_bytes=settings.board_cache_max_entry_bytes,
                          max_bytes=settings.board_cache_max_bytes)
            if settings.board_cache_entries > 0 else None)

    def encode_json(self, data: object) -> bytes:
        """orjson (several times faster than json for a 200-card board); json for what orjson
        refuses (integers beyond 64 bits in a JSON scalar)."""
        try:
            return orjson.dumps(data)
        except TypeError:
            return json.dumps(data, separators=(",", ":")).encode()

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        if (self.cache is not None and isinstance(request, Request) and context is UNSET
                and request.method == "POST"
                and request.headers.get("content-type", "").startswith("application/json")):
            return await self._run_board_cached(request, self.cache, root_value)
        return await super().run(request, context, root_value)

    async def _run_board_cached(self, request: Request, cache: ResponseCache,
                                root_value: Any) -> Any:
        """Serve a board query from the response cache when the tenant's board version is
        unchanged; everything else (and every miss) is GraphQL as usual."""
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return await super().run(request, root_value=root_value)
        query = data.get("query") if isinstance(data, dict) else None
        name = data.get("operationName") if isinstance(data, dict) else None
        variables = data.get("variables") if isinstance(data, dict) else None
        if (not isinstance(query, str) or not isinstance(name, str | None)
                or not isinstance(variables, dict | None)
                or not cache.is_cacheable(query, name)):
            RESPONSE_CACHE.labels("bypass").inc()
            return await super().run(request, root_value=root_value)
        start = time.perf_counter()
        context = await self.get_context(request, await self.get_sub_response(request))
        if context.principal is None:  # the usual path reports the authentication error
            return await super().run(request, context=context, root_value=root_value)
        tenant_id = context.principal.tenant_id
        key = cache.key(tenant_id, query, name, variables or {})
        rendering = None
        async with cache.enter(tenant_id) as lease:
            version = await lease.version()
            body = cache.get(key, version)
            if body is None and (rendering := cache.inflight(key, version)) is None:
                RESPONSE_CACHE.labels("miss").inc()
                cache.lead(key, version)
                rendered = None
                try:
                    # Rendered after the version was read, so its data is at least as new
                    # as that version (the entry's).
                    context.pinned_uow = await lease.render()
                    response = await super().run(request, context=context,
                                                 root_value=root_value)
                    if (response.status_code == 200
                            and isinstance(response.body, bytes | memoryview)
                            and "errors" not in orjson.loads(response.body)):
                        rendered = bytes(response.body)
                finally:
                    context.pinned_uow = None
                    cache.finish(key, version, rendered)
                return response
        if body is None and rendering is not None:  # another request is rendering it
            body = await asyncio.shield(rendering)
            if body is None:  # it failed: answer this one on its own
                return await super().run(request, context=context, root_value=root_value)
        RESPONSE_CACHE.labels("hit").inc()
        label = operation_label(name)
        observed.operation.set(label)
        GRAPHQL_DURATION.labels(label, "query").observe(time.perf_counter() - start)
        return Response(body, media_type="application/json")

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        context = Context(services=self.services, request=request, response=response)
        if isinstance(request, WebSocket):
            return context  # authenticated in on_ws_connect, from connection_init's payload
        try:
            context.principal = await self.services.auth.authenticate(
                authorization=request.headers.get("authorization"),
                api_key=request.headers.get("x-api-key"),
                address=request.client.host if request.client else None,
            )
        except Unauthenticated as e:
            context.auth_error = e
        if context.principal is not None:
            observed.tenant_id.set(str(context.principal.tenant_id))
        return context

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        params = getattr(context, "connection_params", None) or {}
        authorization = params.get("Authorization") or params.get("authorization")
        if authorization is None and isinstance(params.get("token"), str):
            authorization = f"Bearer {params['token']}"
        api_key = params.get("X-API-Key") or params.get("apiKey")
        try:
            principal = await self.services.auth.authenticate(
                authorization=authorization if isinstance(authorization, str) else None,
                api_key=api_key if isinstance(api_key, str) else None,
                address=context.address,
            )
        except Unauthenticated as e:
            raise ConnectionRejectionError({"message": e.message}) from e
        if principal is None:
            raise ConnectionRejectionError({"message": "authentication required"})
        context.principal = principal
        self.services.connections.register(context)  # closed when the principal is revoked
        observed.tenant_id.set(str(principal.tenant_id))
        return None


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    """Ready when PostgreSQL (as the app role) and Redis both answer."""
    services: Services = request.app.state.services
    checks: dict[str, str] = {}
    try:
        async with services.db.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as e:
        checks["postgres"] = f"error: {type(e).__name__}"
    try:
        await services.redis.ping()
        checks["redis"] = "ok"
    except Exception as e:
        checks["redis"] = f"error: {type(e).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ok, **checks}, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    """Prometheus text format; the ingress does not expose this path publicly."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the app; connections open in the lifespan so import has no side effects."""
    settings = settings or get_settings()
    settings.check_secure()
    if tracing.provider() is None:
        tracing.configure_from_settings(settings.otel_exporter_otlp_endpoint, "saas-api")
    check_config(settings)  # refuse token settings that cannot verify anything
    engine = create_engine(
        settings.resolved_app_database_url(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    services = Services(
        settings=settings,
        db=Database(engine),
        redis=aioredis.Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0"),
    )
    services.auth = Authenticator(services.db, settings)
    services.throttle = LoginThrottle(services.redis, settings)
    services.connections = Connections(services.auth)
    graphql = GraphQLApp(services)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub = build_hub(settings, services.db)  # one Redis subscription per process
        await hub.start()
        services.hub = hub
        services.db.publisher = hub.publish
        # Auth changes ride the hub's one Redis subscription (tenants/authcache.py).
        hub.listeners.append(services.auth.cache.on_control)
        try:
            yield
        finally:
            services.db.publisher = None
            await services.auth.drain()
            await hub.stop()
            services.hub = None
            await services.close()
            await services.redis.aclose()
            await services.db.dispose()

    routes: list[BaseRoute] = list(webapp.routes())
    if settings.is_dev and settings.dev_mail_dir:
        from saas.devserver import mailview

        routes.append(Route("/dev/mail", mailview.endpoint(Path(settings.dev_mail_dir))))
    app = Starlette(
        routes=[*routes,
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/unsubscribe/{token}", unsubscribe.endpoint, methods=["GET", "POST"]),
        ],
        middleware=[*tracing.middleware(),
                    Middleware(CorrelationIdMiddleware, header_name="X-Request-ID"),
                    Middleware(AccessLog)],
        lifespan=lifespan,
    )
    app.state.services = services
    return app
