"""Partner webhooks: the entity-event log, endpoints with a cursor, deliveries and attempts.

- entity_events: changes that are not stage moves (contact.*, company.*, forecast.completed,
  import.completed, webhook.disabled). They take their `seq` from the same per-tenant counter
  as stage_events (tenant_counters.event_seq, in the writer's transaction), so one cursor
  follows both logs in commit order.
- webhook_endpoints: URL, wanted event types, pipeline filter, signing secret (and the
  previous one during a rotation's grace period), status, and `cursor_seq`: every event
  with seq <= cursor_seq has been turned into deliveries (or did not match).
- webhook_deliveries: one row per (endpoint, event), unique on (endpoint, seq), whose id is
  the `webhook-id` of every attempt; claimed with a lease so a killed worker's delivery is
  retried by the next.
- webhook_attempts: the delivery log (status code, latency, truncated body or error).
- webhook_tenants(): SECURITY DEFINER; the delivery worker's list of tenants with endpoints.

Revision ID: 0016_issue17
"""

from alembic import op

from tenants.rls import enable_tenant_rls, grant_app_role, statements

revision = "0016_issue17"
down_revision = "0015_issue15_exchange_rates"
branch_labels = None
depends_on = None

TABLES = ("entity_events", "webhook_endpoints", "webhook_deliveries", "webhook_attempts")


def _app_role() -> str:
    return str(op.get_context().config.attributes.get("app_role", "saas_app"))


DDL = """
CREATE TABLE entity_events (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  seq bigint NOT NULL,
  kind text NOT NULL,
  entity_type text NOT NULL,
  entity_id uuid NOT NULL,
  pipeline_id uuid,
  actor_user_id uuid,
  actor_api_key_id uuid,
  data jsonb NOT NULL DEFAULT '{}'::jsonb,
  occurred_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, seq)
);
CREATE TABLE webhook_endpoints (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  id uuid NOT NULL,
  url text NOT NULL,
  description text NOT NULL DEFAULT '',
  event_types text[] NOT NULL,
  pipeline_ids uuid[] NOT NULL DEFAULT '{}',
  secret text NOT NULL,
  previous_secret text,
  previous_secret_expires_at timestamptz,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'disabled')),
  disabled_reason text,
  disabled_at timestamptz,
  failing_since timestamptz,
  cursor_seq bigint NOT NULL,
  created_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE TABLE webhook_deliveries (
  tenant_id uuid NOT NULL,
  id uuid NOT NULL,
  endpoint_id uuid NOT NULL,
  seq bigint NOT NULL,
  event_type text NOT NULL,
  order_key text NOT NULL,
  payload jsonb NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  claimed_until timestamptz,
  last_status_code integer,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, endpoint_id, seq),
  FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id)
    ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (tenant_id, endpoint_id, seq)
  WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries
  (tenant_id, endpoint_id, order_key, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_recent ON webhook_deliveries (tenant_id, endpoint_id, seq DESC);
CREATE TABLE webhook_attempts (
  tenant_id uuid NOT NULL,
  delivery_id uuid NOT NULL,
  attempt integer NOT NULL,
  attempted_at timestamptz NOT NULL DEFAULT now(),
  status_code integer,
  latency_ms integer,
  response_body text,
  error text,
  PRIMARY KEY (tenant_id, delivery_id, attempt),
  FOREIGN KEY (tenant_id, delivery_id) REFERENCES webhook_deliveries (tenant_id, id)
    ON DELETE CASCADE
);
CREATE INDEX webhook_attempts_age ON webhook_attempts (tenant_id, attempted_at)
"""

FUNCTIONS = [
    """CREATE FUNCTION webhook_tenants() RETURNS TABLE (id uuid)
       LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
       AS $$ SELECT DISTINCT tenant_id FROM webhook_endpoints WHERE status = 'active'
             ORDER BY tenant_id $$""",
]


def upgrade() -> None:
    role = _app_role()
    for statement in statements(DDL):
        op.execute(statement)
    for table in TABLES:
        for statement in enable_tenant_rls(table):
            op.execute(statement)
    for statement in FUNCTIONS:
        op.execute(statement)
    op.execute("REVOKE ALL ON FUNCTION webhook_tenants() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION webhook_tenants() TO {role}")
    for statement in grant_app_role(role):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION webhook_tenants()")
    op.execute("DROP TABLE webhook_attempts, webhook_deliveries, webhook_endpoints, "
               "entity_events")
