"""enter_tenant(t): a compiled read enters its tenant inside its one statement (issue 16).

A compiled deal, contact or company list, stage-event page or `node` used to be four
statements: BEGIN, set_config('app.tenant_id', ...), the read, COMMIT. Now it is one, in
its own implicit transaction:

    SELECT q.v FROM enter_tenant($1) AS t(id)
    CROSS JOIN LATERAL (SELECT x.v FROM (<read>) AS x(v) WHERE t.id IS NOT NULL OFFSET 0) q

The function scan is the outer side of a nested loop (the lateral subquery refers to
t.id, and OFFSET 0 keeps the planner from flattening it), so the tenant is set, local to
the statement's transaction, before any row of the read is scanned. Without it RLS shows
nothing (the policy compares with NULLIF(current_setting(...), '')), so a wrong order could
only give an empty answer, never another tenant's rows; the equality tests would see it.
SECURITY INVOKER: it sets the caller's own setting, like set_config.

Revision ID: 0022_issue16
"""

from alembic import op

revision = "0022_issue16"
down_revision = "0021_issue17"
branch_labels = None
depends_on = None

ENTER_TENANT = """
CREATE FUNCTION enter_tenant(_tenant uuid) RETURNS uuid LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM set_config('app.tenant_id', _tenant::text, true);
  RETURN _tenant;
END
$$
"""


def upgrade() -> None:
    op.execute(ENTER_TENANT)


def downgrade() -> None:
    op.execute("DROP FUNCTION enter_tenant(uuid)")
