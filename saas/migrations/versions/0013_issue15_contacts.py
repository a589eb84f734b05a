"""Contacts and companies: versions for optimistic concurrency, merges that old links survive.

- contacts and companies get `version` and `updated_at` (updateContact / updateCompany take
  an expectedVersion).
- contact_merges: which contact a merged duplicate became (ids only, no personal data), so an
  unsubscribe link mailed to the duplicate still unsubscribes the person.
- campaign_enrollments.stop_reason gains 'contact_merged' (the survivor already takes part)
  and 'contact_deleted'.

Revision ID: 0013_issue15_contacts
"""

from alembic import op

from tenants.rls import enable_tenant_rls, grant_app_role

revision = "0013_issue15_contacts"
down_revision = "0012_issue15_lifecycle"
branch_labels = None
depends_on = None

_REASONS = ("'replied', 'reopened', 'deal_moved', 'activity_logged', 'unsubscribed', "
            "'campaign_paused', 'no_recipient', 'delivery_failed', 'deal_archived'")


def _app_role() -> str:
    return str(op.get_context().config.attributes.get("app_role", "saas_app"))


def upgrade() -> None:
    for table in ("contacts", "companies"):
        op.execute(f"ALTER TABLE {table} ADD COLUMN version integer NOT NULL DEFAULT 1, "
                   "ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now()")
    op.execute("""
CREATE TABLE contact_merges (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  merged_id uuid NOT NULL,
  survivor_id uuid NOT NULL,
  merged_by uuid,
  merged_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, merged_id),
  FOREIGN KEY (tenant_id, survivor_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE
)""")
    op.execute("CREATE INDEX contact_merges_survivor ON contact_merges (tenant_id, survivor_id)")
    for statement in enable_tenant_rls("contact_merges"):
        op.execute(statement)
    for statement in grant_app_role(_app_role()):
        op.execute(statement)
    op.execute("ALTER TABLE campaign_enrollments "
               "DROP CONSTRAINT campaign_enrollments_stop_reason_check")
    op.execute("ALTER TABLE campaign_enrollments ADD CONSTRAINT "
               f"campaign_enrollments_stop_reason_check CHECK (stop_reason IN ({_REASONS}, "
               "'contact_merged', 'contact_deleted'))")


def downgrade() -> None:
    op.execute("ALTER TABLE campaign_enrollments "
               "DROP CONSTRAINT campaign_enrollments_stop_reason_check")
    op.execute("ALTER TABLE campaign_enrollments ADD CONSTRAINT "
               f"campaign_enrollments_stop_reason_check CHECK (stop_reason IN ({_REASONS}))")
    op.execute("DROP TABLE contact_merges")
    for table in ("contacts", "companies"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN version, DROP COLUMN updated_at")
