"""Board versions: a per-tenant counter that every committed write to what a board shows bumps.

The API keeps rendered board responses in memory and serves one only while the tenant's
version is the one it was rendered at (schema/response_cache.py). The bump is a deferred
constraint trigger, so it runs at COMMIT: the counter's row lock is always the last lock a
transaction takes (no lock-order deadlocks with the event-seq counter or row locks) and is
held only for the commit itself. A transaction bumps its tenant's version once, however many
rows it writes.

Revision ID: 0007
"""

from alembic import op

from tenants.rls import enable_tenant_rls

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Everything a cacheable board selection can read (schema/response_cache.py, CACHEABLE).
BOARD_TABLES = ("pipelines", "stages", "deals", "users", "contacts", "companies")

FUNCTION = """
CREATE FUNCTION bump_board_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  t uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END;
BEGIN
  IF current_setting('app.board_bumped', true) IS DISTINCT FROM t::text THEN
    INSERT INTO board_versions AS b (tenant_id, version) VALUES (t, 1)
      ON CONFLICT (tenant_id) DO UPDATE SET version = b.version + 1;
    PERFORM set_config('app.board_bumped', t::text, true);
  END IF;
  RETURN NULL;
END
$$
"""

# Enter the tenant and read its board version in one statement (statements in a PL/pgSQL body
# run in order, so the SELECT is under RLS with the tenant just set). SECURITY INVOKER: the
# caller's RLS applies. The response cache's read costs BEGIN, this, COMMIT.
ENTER = """
CREATE FUNCTION enter_tenant_board_version(t uuid) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('app.tenant_id', t::text, true);
  RETURN coalesce((SELECT version FROM board_versions WHERE tenant_id = t), 0);
END
$$
"""


def upgrade() -> None:
    op.execute("CREATE TABLE board_versions ("
               "tenant_id uuid PRIMARY KEY REFERENCES tenants(id), "
               "version bigint NOT NULL)")
    for statement in enable_tenant_rls("board_versions"):
        op.execute(statement)
    op.execute(FUNCTION)
    op.execute(ENTER)
    for table in BOARD_TABLES:
        op.execute(f"CREATE CONSTRAINT TRIGGER {table}_board_version AFTER INSERT OR UPDATE "
                   f"OR DELETE ON {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                   f"EXECUTE FUNCTION bump_board_version()")


def downgrade() -> None:
    for table in BOARD_TABLES:
        op.execute(f"DROP TRIGGER {table}_board_version ON {table}")
    op.execute("DROP FUNCTION enter_tenant_board_version(uuid)")
    op.execute("DROP FUNCTION bump_board_version()")
    op.execute("DROP TABLE board_versions")
