"""Campaigns: definitions and steps, enrollments, sends (one per enrollment and step), and the
per-tenant cursor over stage events that drives enrollment.

Revision ID: 0005
"""

from alembic import op

from tenants.rls import enable_tenant_rls, grant_app_role, statements

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("campaigns", "campaign_steps", "campaign_cursors", "campaign_enrollments",
          "campaign_sends")

DDL = """
CREATE TABLE campaigns (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  id uuid NOT NULL,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  trigger text NOT NULL
    CHECK (trigger IN ('deal_created', 'deal_won', 'deal_lost', 'deal_stale', 'no_activity')),
  trigger_days integer CHECK (trigger_days BETWEEN 1 AND 3650),
  recipient text NOT NULL CHECK (recipient IN ('contact', 'owner')),
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
  segment_ids uuid[] NOT NULL DEFAULT '{}',
  pipeline_ids uuid[] NOT NULL DEFAULT '{}',
  stage_ids uuid[] NOT NULL DEFAULT '{}',
  labels text[] NOT NULL DEFAULT '{}',
  temperatures text[] NOT NULL DEFAULT '{}',
  version integer NOT NULL DEFAULT 1,
  created_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name),
  FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id)
);
CREATE TABLE campaign_steps (
  tenant_id uuid NOT NULL,
  campaign_id uuid NOT NULL,
  position integer NOT NULL CHECK (position >= 0),
  delay_minutes integer NOT NULL CHECK (delay_minutes >= 0),
  subject text NOT NULL CHECK (length(subject) BETWEEN 1 AND 300),
  body text NOT NULL CHECK (length(body) BETWEEN 1 AND 20000),
  PRIMARY KEY (tenant_id, campaign_id, position),
  FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE
);
CREATE TABLE campaign_cursors (
  tenant_id uuid PRIMARY KEY REFERENCES tenants(id),
  last_seq bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE campaign_enrollments (
  tenant_id uuid NOT NULL,
  id uuid NOT NULL,
  campaign_id uuid NOT NULL,
  deal_id uuid NOT NULL,
  contact_id uuid,
  -- What enrolled the deal, unique per campaign and deal: 'event:<seq>', 'stale:<stage>:<t>'
  -- or 'idle:<t>'; a second pass over the same trigger enrolls nobody twice.
  trigger_key text NOT NULL,
  trigger_seq bigint,
  stage_id uuid,
  anchor_at timestamptz NOT NULL,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'completed', 'stopped')),
  stop_reason text CHECK (stop_reason IN (
    'replied', 'reopened', 'deal_moved', 'activity_logged', 'unsubscribed', 'campaign_paused',
    'no_recipient', 'delivery_failed')),
  next_step integer NOT NULL DEFAULT 0,
  next_due_at timestamptz,
  enrolled_at timestamptz NOT NULL,
  finished_at timestamptz,
  -- Re-engagement worked: the lost deal was reopened (the stage event's seq and time).
  converted_seq bigint,
  converted_at timestamptz,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, campaign_id, deal_id, trigger_key),
  FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id),
  FOREIGN KEY (tenant_id, deal_id) REFERENCES deals (tenant_id, id),
  FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id)
);
CREATE UNIQUE INDEX campaign_enrollments_one_active
  ON campaign_enrollments (tenant_id, campaign_id, deal_id) WHERE status = 'active';
CREATE INDEX campaign_enrollments_due
  ON campaign_enrollments (tenant_id, next_due_at) WHERE status = 'active';
CREATE INDEX campaign_enrollments_deal ON campaign_enrollments (tenant_id, deal_id, enrolled_at);
CREATE INDEX campaign_enrollments_campaign
  ON campaign_enrollments (tenant_id, campaign_id, enrolled_at);
CREATE INDEX campaign_enrollments_contact
  ON campaign_enrollments (tenant_id, contact_id) WHERE status = 'active';
CREATE TABLE campaign_sends (
  tenant_id uuid NOT NULL,
  id uuid NOT NULL,
  enrollment_id uuid NOT NULL,
  step integer NOT NULL,
  campaign_id uuid NOT NULL,
  deal_id uuid NOT NULL,
  -- claimed: a worker owns it and has not handed the message to SMTP (safe to re-claim
  -- once the lease expires). delivering: the DATA command is under way (never re-sent).
  -- unconfirmed: the worker vanished while delivering, so it may or may not have arrived.
  status text NOT NULL CHECK (status IN (
    'claimed', 'delivering', 'sent', 'retry', 'failed', 'unconfirmed', 'cancelled')),
  recipient text NOT NULL,
  sender text NOT NULL,
  subject text NOT NULL,
  body text NOT NULL,
  message_id text NOT NULL,
  unsubscribe_url text,
  attempts integer NOT NULL DEFAULT 1,
  error text,
  claimed_at timestamptz NOT NULL,
  next_attempt_at timestamptz,
  sent_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, enrollment_id, step),
  FOREIGN KEY (tenant_id, enrollment_id) REFERENCES campaign_enrollments (tenant_id, id),
  FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id),
  FOREIGN KEY (tenant_id, deal_id) REFERENCES deals (tenant_id, id)
);
CREATE INDEX campaign_sends_campaign ON campaign_sends (tenant_id, campaign_id, created_at);
CREATE INDEX campaign_sends_deal ON campaign_sends (tenant_id, deal_id, created_at)
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
