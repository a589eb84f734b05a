"""Targets and weekly plan-fact snapshots; indexes for funnel analytics.

Revision ID: 0003
"""

from alembic import op

from tenants.rls import enable_tenant_rls, grant_app_role, statements

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("targets", "plan_fact_snapshots")

DDL = """
CREATE TABLE targets (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  id uuid NOT NULL,
  user_id uuid,
  team_id uuid,
  period_kind text NOT NULL CHECK (period_kind IN ('week', 'month')),
  period_start date NOT NULL,
  metric text NOT NULL
    CHECK (metric IN ('won_amount', 'won_count', 'new_deals', 'activities_done')),
  value numeric(18, 2) NOT NULL CHECK (value >= 0),
  set_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  CHECK ((user_id IS NULL) <> (team_id IS NULL)),
  CHECK (period_kind <> 'week' OR extract(isodow FROM period_start) = 1),
  CHECK (period_kind <> 'month' OR extract(day FROM period_start) = 1),
  UNIQUE NULLS NOT DISTINCT (tenant_id, user_id, team_id, period_kind, period_start, metric),
  FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id),
  FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, id)
);
CREATE TABLE plan_fact_snapshots (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  period_kind text NOT NULL CHECK (period_kind IN ('week', 'month')),
  period_start date NOT NULL,
  subject_kind text NOT NULL CHECK (subject_kind IN ('user', 'team')),
  subject_id uuid NOT NULL,
  metric text NOT NULL
    CHECK (metric IN ('won_amount', 'won_count', 'new_deals', 'activities_done')),
  target numeric(18, 2),
  actual numeric(18, 2) NOT NULL,
  computed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, period_kind, period_start, subject_kind, subject_id, metric)
);
CREATE INDEX stage_events_to_stage ON stage_events (tenant_id, to_stage_id, occurred_at);
CREATE INDEX stage_events_from_stage ON stage_events (tenant_id, from_stage_id, occurred_at);
CREATE INDEX activities_owner_done ON activities (tenant_id, owner_id, done_at)
  WHERE done_at IS NOT NULL
"""


def upgrade() -> None:
    role = op.get_context().config.attributes.get("app_role", "saas_app")
    for statement in statements(DDL):
        op.execute(statement)
    for table in TABLES:
        for statement in enable_tenant_rls(table):
            op.execute(statement)
    for statement in grant_app_role(role):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX activities_owner_done, stage_events_from_stage, stage_events_to_stage")
    op.execute("DROP TABLE plan_fact_snapshots, targets")
