"""The ASGI app (composition root): Starlette routes, GraphQL over HTTP and WebSocket."""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from asgi_correlation_id import CorrelationIdMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET

from saas import ratelimit, webapp
from saas.campaigns import unsubscribe
from saas.db import Database, create_engine
from saas.errors import Unauthenticated
from saas.exports import http as exports_http
from saas.imports import http as imports_http
from saas.live.factory import build_hub
from saas.observability import context as observed
from saas.observability import tracing
from saas.observability.access import AccessLog
from saas.settings import Settings, get_settings
from schema.context import Context, Services
from schema.edge import media
from schema.edge.envelope import Limits
from schema.edge.http import HTTPEdge
from schema.edge.ws import EdgeWebSocketAdapter, EdgeWSHandler, refuse_origin, rejected
from schema.live.frames import RawSend
from schema.live.revocation import Connections
from schema.response_cache import ResponseCache
from schema.root import build_schema
from tenants.credentials import Authenticator
from tenants.throttle import LoginThrottle
from tenants.tokens import check_config

log = logging.getLogger("saas.app")


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI view with our context and websocket authentication."""

    # Live events are rendered once per selection and sent as text frames (schema.live);
    # subscribe messages are checked like HTTP requests and rate-limited (schema.edge.ws).
    graphql_transport_ws_handler_class = EdgeWSHandler
    websocket_adapter_class = EdgeWebSocketAdapter  # refusals close with their reason

    def __init__(self, services: Services) -> None:
        settings = services.settings
        schema = build_schema(settings)
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.is_dev else None,
            allow_queries_via_get=True,  # queries only (schema.edge.http)
            keep_alive=True,
            keep_alive_interval=settings.ws_keepalive_seconds,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout),
            max_subscriptions_per_connection=settings.ws_max_subscriptions,
            allowed_origins=settings.allowed_origins,
        )
        self.services = services
        cache = (
            ResponseCache(self.schema._schema, services.db,  # type: ignore[attr-defined]
                          max_entries=settings.board_cache_entries,
                          max_entry_bytes=settings.board_cache_max_entry_bytes,
                          max_bytes=settings.board_cache_max_bytes)
            if settings.board_cache_entries > 0 else None)
        self.http = HTTPEdge(self, schema.documents, Limits(
            max_body_bytes=settings.max_body_bytes,
            body_read_timeout=settings.body_read_timeout_seconds,
            max_json_depth=settings.max_json_depth,
            max_list_length=settings.max_input_list_length,
            max_string_length=settings.max_string_length), cache, settings.graphql_max_cost,
            settings.request_deadline_seconds, settings.graphql_anonymous_max_tokens,
            settings.graphql_anonymous_max_length)

    async def render_graphql_ide(self, request: Request) -> Response:
        """Strawberry's GraphiQL page with its assets from /app/graphiql/ (web/vendor.mjs)
        instead of a CDN: same files, so the page's integrity hashes still hold."""
        return HTMLResponse(webapp.local_graphiql(self.graphql_ide_html))

    async def reject_websocket(self, request: WebSocket) -> WebSocket:
        return await refuse_origin(request)  # 403 with the reason, not an empty one

    def encode_json(self, data: object) -> bytes:
        """orjson (several times faster than json for a 200-card board); json for what orjson
        refuses (integers beyond 64 bits in a JSON scalar)."""
        return media.encode(data)

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        if isinstance(request, Request) and context is UNSET:
            return await self.http.handle(request)  # every HTTP request: schema.edge
        return await super().run(request, context, root_value)

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
            raise rejected(context, e.message) from e
        if principal is None:
            raise rejected(context, "authentication required: send 'Authorization: Bearer "
                                    "<token or API key>' in the connection_init payload")
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
    """Prometheus text format, behind METRICS_TOKEN when it is set; unset, the ingress must
    not expose this path (docs/operations.md)."""
    token = request.app.state.services.settings.metrics_token
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), token.encode()):
            return Response(media.error_body(
                "send 'Authorization: Bearer <METRICS_TOKEN>' to read the metrics",
                "UNAUTHENTICATED"), status_code=401, media_type=media.JSON,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def cors(settings: Settings) -> list[Middleware]:
    """Cross-origin browser access for ALLOWED_ORIGINS (the same list the websocket
    handshake checks); none when it is empty. Credentials are bearer tokens in a header,
    never cookies, so no `Access-Control-Allow-Credentials`."""
    if not settings.allowed_origins:
        return []
    return [Middleware(
        CORSMiddleware, allow_origins=settings.allowed_origins, allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "X-API-Key", "Content-Type", "Accept", "X-Request-ID",
                       "Idempotency-Key"],
        expose_headers=["X-Request-ID", "Retry-After"], max_age=settings.cors_max_age_seconds,
    )]


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
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    services = Services(
        settings=settings,
        db=Database(engine),
        redis=aioredis.Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0"),
    )
    services.auth = Authenticator(services.db, settings)
    services.throttle = LoginThrottle(services.redis, settings)
    if settings.rate_limit_enabled:
        services.limiter = ratelimit.Limiter(
            services.redis, services.db,
            {name: ratelimit.Budget(**values) for name, values in
             settings.rate_limit_plans.items()},
            prefix=f"ratelimit:{make_url(settings.resolved_app_database_url()).database}")
    services.connections = Connections(services.auth)
    graphql = GraphQLApp(services)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.db.prewarm(settings.db_pool_size)
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
            Route("/graphql", graphql, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/unsubscribe/{token}", unsubscribe.endpoint, methods=["GET", "POST"]),
            Route("/imports", imports_http.upload, methods=["POST"]),
            Route("/exports/{export_id}", exports_http.download, methods=["GET"]),
        ],
        middleware=[Middleware(RawSend),  # first: the server's own websocket send
                    *tracing.middleware(),
                    Middleware(CorrelationIdMiddleware, header_name="X-Request-ID"),
                    Middleware(AccessLog),
                    *cors(settings)],
        lifespan=lifespan,
    )
    app.state.services = services
    return app
