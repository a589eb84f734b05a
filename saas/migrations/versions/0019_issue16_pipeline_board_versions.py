"""Board versions per pipeline (issue 16): a write to one board leaves other boards cached.

A board of pipeline P reads rows of P (its pipeline, stages and deals) and rows every
pipeline shares (users, contacts, companies). So besides the tenant's version (every write,
as in 0007), each tenant has a `shared` counter (writes to the shared tables) and each
pipeline its own counter (writes to its pipelines/stages/deals rows, old and new pipeline of
an update). A board's version is shared + its pipeline's: both only grow, so the sum changes
exactly when something the board can show may have changed.

Plain AFTER ROW triggers note, in transaction-local settings, which pipelines a transaction
wrote and whether it wrote a shared table; the deferred trigger of 0007 then bumps, once per
transaction at COMMIT, the tenant row first and the pipelines' rows in uuid order, so two
committing transactions always lock counters in the same order (no deadlock).

Revision ID: 0019_issue16
"""

from alembic import op

from tenants.rls import enable_tenant_rls

revision = "0019_issue16"
down_revision = "0018_issue17"
branch_labels = None
depends_on = None

PIPELINE_TABLES = {"pipelines": "self", "stages": "row", "deals": "row"}
SHARED_TABLES = ("users", "contacts", "companies")

# One function for both kinds of rows: `pipelines` rows are their own pipeline (TG_ARGV[0]
# = 'self'); stages and deals carry pipeline_id.
NOTE_PIPELINE = """
CREATE FUNCTION note_board_pipeline() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  seen text := coalesce(current_setting('app.board_pipelines', true), '');
  old_p text;
  new_p text;
BEGIN
  IF TG_ARGV[0] = 'self' THEN
    IF TG_OP <> 'INSERT' THEN old_p := OLD.id::text; END IF;
    IF TG_OP <> 'DELETE' THEN new_p := NEW.id::text; END IF;
  ELSE
    IF TG_OP <> 'INSERT' THEN old_p := OLD.pipeline_id::text; END IF;
    IF TG_OP <> 'DELETE' THEN new_p := NEW.pipeline_id::text; END IF;
  END IF;
  IF old_p IS NOT NULL AND position(old_p IN seen) = 0 THEN
    seen := seen || old_p || ',';
  END IF;
  IF new_p IS NOT NULL AND position(new_p IN seen) = 0 THEN
    seen := seen || new_p || ',';
  END IF;
  PERFORM set_config('app.board_pipelines', seen, true);
  RETURN NULL;
END
$$
"""

NOTE_SHARED = """
CREATE FUNCTION note_board_shared() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('app.board_shared', 'yes', true);
  RETURN NULL;
END
$$
"""

BUMP = """
CREATE OR REPLACE FUNCTION bump_board_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  t uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END;
  shared integer := CASE WHEN current_setting('app.board_shared', true) = 'yes'
                         THEN 1 ELSE 0 END;
BEGIN
  IF current_setting('app.board_bumped', true) IS DISTINCT FROM t::text THEN
    INSERT INTO board_versions AS b (tenant_id, version, shared) VALUES (t, 1, shared)
      ON CONFLICT (tenant_id) DO UPDATE SET version = b.version + 1,
                                            shared = b.shared + EXCLUDED.shared;
    INSERT INTO pipeline_board_versions AS v (tenant_id, pipeline_id, version)
      SELECT t, p::uuid, 1
      FROM unnest(string_to_array(
             rtrim(coalesce(current_setting('app.board_pipelines', true), ''), ','), ',')) p
      WHERE p <> '' ORDER BY 2
      ON CONFLICT (tenant_id, pipeline_id) DO UPDATE SET version = v.version + 1;
    PERFORM set_config('app.board_bumped', t::text, true);
  END IF;
  RETURN NULL;
END
$$
"""

# The version of one pipeline's boards, entering the tenant, in one statement (like 0007's
# enter_tenant_board_version, which stays for documents whose pipeline is not known).
ENTER = """
CREATE FUNCTION enter_board_version(t uuid, p uuid) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('app.tenant_id', t::text, true);
  RETURN coalesce((SELECT shared FROM board_versions WHERE tenant_id = t), 0)
       + coalesce((SELECT version FROM pipeline_board_versions
                   WHERE tenant_id = t AND pipeline_id = p), 0);
END
$$
"""


def upgrade() -> None:
    op.execute("ALTER TABLE board_versions ADD COLUMN shared bigint NOT NULL DEFAULT 0")
    op.execute("CREATE TABLE pipeline_board_versions ("
               "tenant_id uuid NOT NULL REFERENCES tenants(id), "
               "pipeline_id uuid NOT NULL, "
               "version bigint NOT NULL, "
               "PRIMARY KEY (tenant_id, pipeline_id))")
    for statement in enable_tenant_rls("pipeline_board_versions"):
        op.execute(statement)
    op.execute(NOTE_PIPELINE)
    op.execute(NOTE_SHARED)
    op.execute(BUMP)
    op.execute(ENTER)
    for table, column in PIPELINE_TABLES.items():
        op.execute(f"CREATE TRIGGER {table}_board_pipeline AFTER INSERT OR UPDATE OR DELETE "
                   f"ON {table} FOR EACH ROW EXECUTE FUNCTION note_board_pipeline('{column}')")
    for table in SHARED_TABLES:
        op.execute(f"CREATE TRIGGER {table}_board_shared AFTER INSERT OR UPDATE OR DELETE "
                   f"ON {table} FOR EACH ROW EXECUTE FUNCTION note_board_shared()")


def downgrade() -> None:
    for table in SHARED_TABLES:
        op.execute(f"DROP TRIGGER {table}_board_shared ON {table}")
    for table in PIPELINE_TABLES:
        op.execute(f"DROP TRIGGER {table}_board_pipeline ON {table}")
    op.execute("DROP FUNCTION enter_board_version(uuid, uuid)")
    op.execute("DROP FUNCTION note_board_shared()")
    op.execute("DROP FUNCTION note_board_pipeline()")
    op.execute("DROP TABLE pipeline_board_versions")
    op.execute("ALTER TABLE board_versions DROP COLUMN shared")
    op.execute(BUMP_0007)


BUMP_0007 = """
CREATE OR REPLACE FUNCTION bump_board_version() RETURNS trigger LANGUAGE plpgsql AS $$
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
