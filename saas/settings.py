"""Settings read from the environment (pydantic-settings), refused when insecure outside dev."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

# Long enough (>= 32 bytes) that PyJWT does not warn about an HS256 key in development.
DEV_SECRET = "dev-insecure-secret-change-me-not-for-production"

Environment = Literal["dev", "test", "production"]


class InsecureSettings(RuntimeError):
    """Raised at start-up when a secret is missing or left at its development default."""


class Settings(BaseSettings):
    """Every knob of the service; names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    environment: Environment = "dev"
    # Owner role: runs migrations. Unset in dev/test means "start embedded servers".
    database_url: str | None = None
    # Application role (owns nothing, no BYPASSRLS). Derived from database_url when unset.
    app_database_url: str | None = None
    app_db_role: str = "saas_app"
    app_db_password: str | None = None
    redis_url: str | None = None
    data_dir: str = ".data"

    jwt_secret: str = DEV_SECRET
    jwt_issuer: str = "saas"
    jwt_audience: str = "saas-api"
    jwt_ttl_seconds: int = Field(default=900, ge=30)  # access tokens: 15 minutes
    refresh_ttl_seconds: int = Field(default=30 * 86400, ge=60)  # a login session's lifetime
    # External identity provider: RS256/ES256 tokens verified with this PEM public key or the
    # keys of a JWKS URL (tenants/tokens.py); our own login tokens stay HS256.
    jwt_public_key: str | None = None
    jwt_jwks_url: str | None = None
    jwt_jwks_cache_seconds: float = Field(default=300.0, gt=0)
    # An unknown `kid` refetches the JWKS, at most this often (forged kids cannot flood it).
    jwt_jwks_min_refresh_seconds: float = Field(default=10.0, ge=0)
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["HS256"])
    # Per-process cache of users', sessions' and keys' authorisation state; changes are
    # pushed through the live hub's Redis channel, this is only the backstop.
    auth_cache_ttl_seconds: float = Field(default=5.0, gt=0)
    # Login throttling (Redis, shared by all API processes): attempts per window.
    login_window_seconds: int = Field(default=900, ge=1)
    login_max_per_account: int = Field(default=10, ge=1)
    login_max_per_address: int = Field(default=100, ge=1)
    api_key_max_grace_seconds: int = Field(default=7 * 86400, ge=0)
    invitation_ttl_seconds: int = Field(default=7 * 86400, ge=60)
    password_reset_ttl_seconds: int = Field(default=3600, ge=60)
    unsubscribe_secret: str = DEV_SECRET

    # Browser origins allowed cross-origin (CORS and websocket handshakes); empty: none,
    # "*": any. Same-origin pages and non-browser clients are never affected.
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_max_age_seconds: int = Field(default=600, ge=0)  # how long browsers cache a preflight
    graphql_max_depth: int = 12
    graphql_max_aliases: int = 30
    graphql_max_tokens: int = Field(default=4000, ge=10)
    # Documents of callers without credentials (login, refresh, password reset, ...).
    graphql_anonymous_max_tokens: int = Field(default=200, ge=10)
    # ... and characters: comments and string literals are not tokens, and lexing a 1 MiB
    # comment takes ~250 ms of CPU (a login document is well under 1,000 characters).
    graphql_anonymous_max_length: int = Field(default=10_000, ge=100)
    # Objects one operation may ask for (schema/cost.py): lists multiply by `first`.
    graphql_max_cost: int = Field(default=20_000, ge=1)
    # The edge (schema/edge): limits checked before a document is parsed or executed.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)  # 413 beyond this
    body_read_timeout_seconds: float = Field(default=10.0, gt=0)  # whole body, slow clients
    max_json_depth: int = Field(default=32, ge=2)  # nesting of variables/extensions
    max_input_list_length: int = Field(default=1000, ge=1)  # any list in variables
    max_string_length: int = Field(default=20_000, ge=1)  # any String input (fields: less)
    # Automatic persisted queries (Apollo's protocol) are kept this long in Redis; with
    # TRUSTED_DOCUMENTS, callers signed in as users run only registered documents.
    apq_ttl_seconds: int = Field(default=7 * 86400, ge=60)
    trusted_documents: bool = False
    # Parsed and validated documents of authenticated callers, bounded by estimated bytes.
    document_cache_bytes: int = Field(default=32 * 1024 * 1024, ge=0)
    graphql_introspection: bool | None = None  # None: on in dev/test, off in production
    # Rendered board responses per API process, checked against the tenant's board version
    # on every request (schema/response_cache.py); 0 entries turns the cache off.
    board_cache_entries: int = Field(default=2048, ge=0)
    board_cache_max_entry_bytes: int = Field(default=4 * 1024 * 1024, ge=0)
    board_cache_max_bytes: int = Field(default=256 * 1024 * 1024, ge=0)  # all entries
    # Board and deal-list queries answered by one SQL statement that builds their JSON
    # (schema/compiled/); off: every query runs through the resolvers.
    compiled_reads: bool = True
    ws_connection_init_timeout: float = 10.0
    ws_max_subscriptions: int = 20
    ws_keepalive_seconds: float = 15.0
    # Per websocket: messages (operations, pings, ...) per second on average and at once,
    # and the largest frame the server reads (uvicorn's ws_max_size).
    ws_messages_per_second: float = Field(default=20.0, gt=0)
    ws_message_burst: float = Field(default=60.0, ge=1)
    ws_max_message_bytes: int = Field(default=256 * 1024, ge=1024)
    graceful_shutdown_seconds: int = 30

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 30.0
    # Campaign email: the From of tenants without a sender_email; links point at the API.
    mail_default_sender: str = "no-reply@localhost"
    # Where mail recipients reach this API (unsubscribe links); `saas dev` sets it to the
    # address it serves on unless PUBLIC_BASE_URL is given.
    public_base_url: str = "http://127.0.0.1:8000"
    # Set by `saas dev` when it runs the mail sink: GET /dev/mail shows what it received.
    dev_mail_dir: str | None = None
    # The web frontend: invitation and password-reset links point at <APP_BASE_URL>/...
    app_base_url: str = "http://127.0.0.1:3000"
    # A claimed send not handed to SMTP within the lease is re-claimed by another worker.
    campaign_send_lease_seconds: int = 600
    campaign_max_send_attempts: int = 8
    campaign_batch_size: int = 200

    # Bulk import and export (saas/imports, saas/exports).
    import_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    import_max_rows: int = Field(default=200_000, ge=1)
    import_batch_rows: int = Field(default=2000, ge=1)
    export_url_ttl_seconds: int = Field(default=900, ge=1)
    # Rate limits by query cost (saas/ratelimit.py): buckets per plan, as JSON
    # {"plan": {"key_maximum", "key_restore_rate", "tenant_maximum", "tenant_restore_rate"}};
    # a tenant's plan is tenants.plan (default "standard").
    rate_limit_enabled: bool = True
    rate_limit_plans: dict[str, dict[str, float]] = Field(default_factory=lambda: {
        "standard": {"key_maximum": 50000.0, "key_restore_rate": 2500.0,
                     "tenant_maximum": 250000.0, "tenant_restore_rate": 12500.0}})
    # Idempotency-Key (schema/idempotency.py): how long a key's response is kept, and how
    # long a repeat waits for the first request still running before a 409.
    idempotency_ttl_seconds: float = Field(default=86400.0, gt=0)
    idempotency_wait_seconds: float = Field(default=10.0, gt=0)
    # Webhooks (saas/webhooks, docs/partners.md). A URL must resolve to public addresses
    # only, unless its address is in one of these networks (CIDRs; dev and tests: loopback).
    # The arq worker runs the delivery loop too (off: run `saas webhooks` processes instead).
    webhook_delivery_in_worker: bool = True
    webhook_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_require_https: bool | None = None  # None: required in production
    webhook_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_read_timeout_seconds: float = Field(default=10.0, gt=0)
    # Retries: exponential backoff with jitter from base to max; a delivery (and an endpoint)
    # failing for the whole window gives up (and is disabled).
    webhook_retry_window_seconds: float = Field(default=86400.0, gt=0)
    webhook_backoff_base_seconds: float = Field(default=5.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    # A claimed delivery not finished within the lease (a killed worker) is sent again.
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    # Dispatch rounds (event log -> deliveries) at most this often, so a stream of commits is
    # dispatched several events at a time; an isolated commit is not delayed.
    webhook_dispatch_interval_seconds: float = Field(default=0.025, ge=0, le=1)
    webhook_concurrency_per_endpoint: int = Field(default=4, ge=1)
    webhook_log_retention_days: int = Field(default=30, ge=1)
    webhook_max_endpoints: int = Field(default=20, ge=1)
    webhook_secret_max_grace_seconds: int = Field(default=7 * 86400, ge=0)

    arq_queue_name: str = "arq:queue"
    job_timeout_seconds: int = 300
    # The job outbox (saas/outbox.py): how long a request waits for Redis to take its job
    # after commit (on failure the job waits in PostgreSQL), and how often the worker's
    # sweeper enqueues waiting jobs.
    outbox_relay_timeout_seconds: float = Field(default=1.0, gt=0, le=30)
    outbox_sweep_seconds: float = Field(default=2.0, gt=0, le=300)
    # Connections per API process, all opened at start-up. No overflow by default: an
    # overflow connection is closed when it is returned, so under load the process kept
    # opening new PostgreSQL backends (hundreds per second); a request beyond the pool waits
    # for a connection instead.
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    # The API's limits on one request's work: PostgreSQL cancels a statement after this
    # long, and the whole request (after its body arrived) is cut off after the deadline.
    db_statement_timeout_ms: int = Field(default=15_000, ge=0)
    request_deadline_seconds: float = Field(default=30.0, gt=0)
    log_level: str = "INFO"
    log_json: bool = True
    worker_metrics_port: int = 0  # >0: the worker serves /metrics on this port
    # Set: the API's /metrics answers only `Authorization: Bearer <token>` (else 401). Unset:
    # it is open, and the ingress must not route /metrics (docs/operations.md).
    metrics_token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    otel_exporter_otlp_endpoint: str | None = None

    @field_validator("public_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        # It goes verbatim into mail headers (List-Unsubscribe): ASCII, no whitespace.
        if not re.fullmatch(r"https?://[!-~]+", value) or len(value) > 500:
            raise ValueError("PUBLIC_BASE_URL must be an http(s) URL of printable ASCII "
                             "characters without spaces")
        return value.rstrip("/")

    @field_validator("allowed_origins", "jwt_algorithms", "webhook_allowed_networks",
                     mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def is_dev(self) -> bool:
        return self.environment in ("dev", "test")

    @property
    def webhooks_need_https(self) -> bool:
        if self.webhook_require_https is not None:
            return self.webhook_require_https
        return not self.is_dev

    @property
    def introspection_enabled(self) -> bool:
        if self.graphql_introspection is not None:
            return self.graphql_introspection
        return self.is_dev

    def resolved_app_database_url(self) -> str:
        """The application role's URL: explicit, or the owner URL with the app role swapped in."""
        if self.app_database_url:
            return self.app_database_url
        if not self.database_url:
            raise InsecureSettings("DATABASE_URL (or APP_DATABASE_URL) must be set")
        url = make_url(self.database_url).set(
            username=self.app_db_role, password=self.app_db_password
        )
        return url.render_as_string(hide_password=False)

    def app_role_credentials(self) -> tuple[str, str | None]:
        """The application role's name and password, as migrations must create them."""
        if self.app_database_url:
            url = make_url(self.app_database_url)
            return url.username or self.app_db_role, url.password or self.app_db_password
        return self.app_db_role, self.app_db_password

    def check_secure(self) -> None:
        """Refuse to run outside dev with a missing or default secret; say which variable."""
        if self.is_dev:
            return
        problems = []
        for name in ("jwt_secret", "unsubscribe_secret"):
            value = getattr(self, name)
            if not value or value == DEV_SECRET or len(value) < 32:
                problems.append(f"{name.upper()} (at least 32 random characters)")
        if not (self.database_url or self.app_database_url):
            problems.append("APP_DATABASE_URL (or DATABASE_URL)")
        if not self.redis_url:
            problems.append("REDIS_URL")
        if self.metrics_token and len(self.metrics_token) < 32:
            problems.append("METRICS_TOKEN (at least 32 random characters, or unset)")
        if problems:
            raise InsecureSettings(
                f"refusing to start in {self.environment!r}: set " + ", ".join(problems)
            )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own Settings instead)."""
    return Settings()


def async_url(url: str) -> str:
    """Normalise a postgres:// URL to the asyncpg driver SQLAlchemy uses."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
