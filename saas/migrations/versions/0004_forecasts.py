"""Forecast records: requested, computed by a worker, queryable with their results.

Revision ID: 0004
"""

from alembic import op

from tenants.rls import enable_tenant_rls, grant_app_role, statements

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE forecasts (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  id uuid NOT NULL,
  pipeline_id uuid NOT NULL,
  horizon_months integer NOT NULL CHECK (horizon_months BETWEEN 1 AND 24),
  team_id uuid,
  owner_id uuid,
  status text NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'running', 'done', 'failed')),
  -- Same request while one is pending -> the pending one (see the unique index below).
  request_key text NOT NULL,
  origin text NOT NULL DEFAULT 'request' CHECK (origin IN ('request', 'nightly')),
  attempts integer NOT NULL DEFAULT 0,
  error text,
  result jsonb,
  requested_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, pipeline_id) REFERENCES pipelines (tenant_id, id),
  FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, id),
  FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id)
);
CREATE UNIQUE INDEX forecasts_one_pending ON forecasts (tenant_id, request_key)
  WHERE status IN ('queued', 'running');
CREATE INDEX forecasts_pipeline ON forecasts (tenant_id, pipeline_id, created_at DESC);
CREATE INDEX stage_events_pipeline_time ON stage_events (tenant_id, pipeline_id, occurred_at);
"""


def upgrade() -> None:
    role = op.get_context().config.attributes.get("app_role", "saas_app")
    for statement in statements(DDL):
        op.execute(statement)
    for statement in enable_tenant_rls("forecasts"):
        op.execute(statement)
    for statement in grant_app_role(role):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX stage_events_pipeline_time")
    op.execute("DROP TABLE forecasts")
