"""Access control: the audit trail.

- audit_events: append-only, per tenant (RLS). The app role may INSERT and SELECT only
  (tenants/rls.py re-applies that after every grant), and a trigger refuses UPDATE and
  DELETE for every role, so even a mistaken grant cannot rewrite history.

Revision ID: 0011
"""

from alembic import op

from tenants.rls import enable_tenant_rls, grant_app_role, statements

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def _app_role() -> str:
    return str(op.get_context().config.attributes.get("app_role", "saas_app"))


AUDIT = """
CREATE TABLE audit_events (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  id uuid NOT NULL,
  occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  action text NOT NULL CHECK (action ~ '^[a-z][a-z_]*(\\.[a-z][a-z_]*)+$'),
  actor_user_id uuid,
  actor_api_key_id uuid,
  target_type text,
  target_id uuid,
  address text,
  details jsonb NOT NULL DEFAULT '{}'::jsonb,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_events_recent ON audit_events (tenant_id, occurred_at DESC, id DESC);
CREATE INDEX audit_events_action ON audit_events (tenant_id, action, occurred_at DESC);
CREATE INDEX audit_events_target ON audit_events (tenant_id, target_id, occurred_at DESC)
  WHERE target_id IS NOT NULL;
"""
APPEND_ONLY = [
    """CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'audit_events is append-only'
             USING ERRCODE = 'insufficient_privilege'; END $$""",
    """CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
       FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()""",
]


def upgrade() -> None:
    role = _app_role()
    for statement in [*statements(AUDIT), *APPEND_ONLY]:
        op.execute(statement)
    for statement in enable_tenant_rls("audit_events"):
        op.execute(statement)
    for statement in grant_app_role(role):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE audit_events")
    op.execute("DROP FUNCTION audit_events_append_only()")
