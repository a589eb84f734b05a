"""Segments, pipelines, stages, companies, contacts, deals, stage events, activities.

Revision ID: 0002
"""

from alembic import op

from tenants.rls import enable_tenant_rls, grant_app_role, statements

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = (
    "tenant_counters", "segments", "pipelines", "stages", "companies", "contacts",
    "custom_field_defs", "deals", "stage_events", "activities",
)

DDL = """
CREATE TABLE tenant_counters (
  tenant_id uuid PRIMARY KEY REFERENCES tenants(id),
  event_seq bigint NOT NULL DEFAULT 0
);
CREATE TABLE segments (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  id uuid NOT NULL,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at timestamptz NOT NULL DEFAULT now(),
  archived_at timestamptz,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name)
);
CREATE TABLE pipelines (
  tenant_id uuid NOT NULL,
  id uuid NOT NULL,
  segment_id uuid NOT NULL,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, segment_id),
  FOREIGN KEY (tenant_id, segment_id) REFERENCES segments (tenant_id, id)
);
CREATE TABLE stages (
  tenant_id uuid NOT NULL,
  id uuid NOT NULL,
  pipeline_id uuid NOT NULL,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  position integer NOT NULL,
  kind text NOT NULL CHECK (kind IN ('open', 'won', 'lost')),
  probability numeric(5, 4) NOT NULL CHECK (probability BETWEEN 0 AND 1),
  rotting_days integer CHECK (rotting_days > 0),
  archived_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, pipeline_id, id),
  FOREIGN KEY (tenant_id, pipeline_id) REFERENCES pipelines (tenant_id, id)
);
CREATE UNIQUE INDEX stages_active_name ON stages (tenant_id, pipeline_id, lower(name))
  WHERE archived_at IS NULL;
CREATE TABLE companies (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  id uuid NOT NULL,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  domain text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE TABLE contacts (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  id uuid NOT NULL,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  email text,
  phone text,
  company_id uuid,
  unsubscribed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, company_id) REFERENCES companies (tenant_id, id)
);
CREATE TABLE custom_field_defs (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  id uuid NOT NULL,
  key text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]{0,62}$'),
  label text NOT NULL,
  type text NOT NULL CHECK (type IN ('text', 'number', 'boolean', 'date', 'choice')),
  choices jsonb,
  required boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, key)
);
CREATE TABLE deals (
  tenant_id uuid NOT NULL,
  id uuid NOT NULL,
  pipeline_id uuid NOT NULL,
  stage_id uuid NOT NULL,
  owner_id uuid,
  contact_id uuid,
  company_id uuid,
  title text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
  amount numeric(18, 2) NOT NULL DEFAULT 0 CHECK (amount >= 0),
  currency char(3) NOT NULL,
  expected_close_date date,
  temperature text NOT NULL DEFAULT 'warm' CHECK (temperature IN ('hot', 'warm', 'cold')),
  labels text[] NOT NULL DEFAULT '{}',
  custom_fields jsonb NOT NULL DEFAULT '{}',
  probability_override numeric(5, 4) CHECK (probability_override BETWEEN 0 AND 1),
  lost_reason text,
  version integer NOT NULL DEFAULT 1,
  stage_entered_at timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, pipeline_id, stage_id) REFERENCES stages (tenant_id, pipeline_id, id),
  FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id),
  FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id),
  FOREIGN KEY (tenant_id, company_id) REFERENCES companies (tenant_id, id)
);
CREATE INDEX deals_board ON deals (tenant_id, pipeline_id, stage_id, updated_at DESC, id DESC);
CREATE INDEX deals_owner ON deals (tenant_id, owner_id);
CREATE INDEX deals_title_trgm ON deals USING gin (title gin_trgm_ops);
CREATE TABLE stage_events (
  tenant_id uuid NOT NULL,
  seq bigint NOT NULL,
  deal_id uuid NOT NULL,
  pipeline_id uuid NOT NULL,
  kind text NOT NULL CHECK (
    kind IN ('created', 'moved', 'lost', 'reopened', 'updated', 'transferred')),
  from_stage_id uuid,
  to_stage_id uuid,
  from_pipeline_id uuid,
  actor_user_id uuid,
  actor_api_key_id uuid,
  amount numeric(18, 2) NOT NULL,
  currency char(3) NOT NULL,
  lost_reason text,
  data jsonb NOT NULL DEFAULT '{}',
  occurred_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, seq),
  FOREIGN KEY (tenant_id, deal_id) REFERENCES deals (tenant_id, id)
);
CREATE INDEX stage_events_deal ON stage_events (tenant_id, deal_id, seq);
CREATE INDEX stage_events_pipeline ON stage_events (tenant_id, pipeline_id, seq);
CREATE TABLE activities (
  tenant_id uuid NOT NULL,
  id uuid NOT NULL,
  deal_id uuid NOT NULL,
  kind text NOT NULL CHECK (kind IN ('call', 'meeting', 'email', 'task')),
  subject text NOT NULL CHECK (length(subject) BETWEEN 1 AND 300),
  note text,
  owner_id uuid,
  due_at timestamptz,
  done_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, deal_id) REFERENCES deals (tenant_id, id),
  FOREIGN KEY (tenant_id, owner_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX activities_deal_due ON activities (tenant_id, deal_id, due_at) WHERE done_at IS NULL;
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
    op.execute("DROP TABLE " + ", ".join(reversed(TABLES)))
