"""The transactional outbox for arq jobs (issue 17).

- job_outbox: one row per job a change needs (a forecast to compute, an import to run, an
  export to write), inserted in the same transaction as the change. A relay enqueues it in
  arq (with the job's deterministic id) and deletes it; while Redis is unreachable the row
  waits, so a committed request never loses its job.
- job_outbox_tenants(): SECURITY DEFINER; the sweeper's list of tenants with waiting jobs.

Revision ID: 0021_issue17
"""

from alembic import op

from tenants.rls import enable_tenant_rls, grant_app_role, statements

revision = "0021_issue17"
down_revision = "0020_issue17"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE job_outbox (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  id bigint GENERATED ALWAYS AS IDENTITY,
  function text NOT NULL CHECK (function ~ '^[a-z_]{1,64}$'),
  job_id text NOT NULL,
  kwargs jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
)
"""

FUNCTION = """CREATE FUNCTION job_outbox_tenants() RETURNS TABLE (id uuid)
   LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
   AS $$ SELECT DISTINCT tenant_id FROM job_outbox ORDER BY tenant_id $$"""


def _app_role() -> str:
    return str(op.get_context().config.attributes.get("app_role", "saas_app"))


def upgrade() -> None:
    role = _app_role()
    for statement in statements(DDL):
        op.execute(statement)
    for statement in enable_tenant_rls("job_outbox"):
        op.execute(statement)
    op.execute(FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION job_outbox_tenants() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION job_outbox_tenants() TO {role}")
    for statement in grant_app_role(role):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION job_outbox_tenants()")
    op.execute("DROP TABLE job_outbox")
