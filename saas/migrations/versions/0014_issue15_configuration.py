"""Configuration lifecycle: the tenant's default stage template, archived custom fields.

- stage_templates: the stage set a new segment starts from when none is given (one row per
  tenant; without a row the built-in default of saas/pipelines/templates.py applies).
- custom_field_defs.archived_at: an archived field is hidden from definitions and refuses
  new values; values already on deals are kept.
- campaigns.status gains 'archived' (stopped for good, hidden from the list).

Revision ID: 0014_issue15_configuration
"""

from alembic import op

from tenants.rls import enable_tenant_rls, grant_app_role

revision = "0014_issue15_configuration"
down_revision = "0013_issue15_contacts"
branch_labels = None
depends_on = None


def _app_role() -> str:
    return str(op.get_context().config.attributes.get("app_role", "saas_app"))


def upgrade() -> None:
    op.execute("""
CREATE TABLE stage_templates (
  tenant_id uuid PRIMARY KEY REFERENCES tenants(id),
  stages jsonb NOT NULL CHECK (jsonb_typeof(stages) = 'array'),
  updated_by uuid,
  updated_at timestamptz NOT NULL DEFAULT now()
)""")
    for statement in enable_tenant_rls("stage_templates"):
        op.execute(statement)
    for statement in grant_app_role(_app_role()):
        op.execute(statement)
    op.execute("ALTER TABLE custom_field_defs ADD COLUMN archived_at timestamptz")
    op.execute("ALTER TABLE campaigns DROP CONSTRAINT campaigns_status_check")
    op.execute("ALTER TABLE campaigns ADD CONSTRAINT campaigns_status_check "
               "CHECK (status IN ('active', 'paused', 'archived'))")


def downgrade() -> None:
    op.execute("UPDATE campaigns SET status = 'paused' WHERE status = 'archived'")
    op.execute("ALTER TABLE campaigns DROP CONSTRAINT campaigns_status_check")
    op.execute("ALTER TABLE campaigns ADD CONSTRAINT campaigns_status_check "
               "CHECK (status IN ('active', 'paused'))")
    op.execute("ALTER TABLE custom_field_defs DROP COLUMN archived_at")
    op.execute("DROP TABLE stage_templates")
