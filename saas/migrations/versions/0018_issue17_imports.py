"""Bulk import and export jobs; imported rows remember (import, row) as their natural key.

- imports: one uploaded file (CSV or JSON Lines) of companies, contacts or deals, its column
  mapping and options, its status and progress (`rows_done` advances in the transaction that
  writes each batch, so a killed job resumes exactly where its last batch committed).
- companies, contacts, deals get `import_id` and `import_row`, unique per tenant when set: a
  row of an import can create its object once, however often the job runs.
- exports: a requested export and, when done, its file (served through a signed URL).

Revision ID: 0018_issue17
"""

from alembic import op

from tenants.rls import enable_tenant_rls, grant_app_role, statements

revision = "0018_issue17"
down_revision = "0017_issue17"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE imports (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  id uuid NOT NULL,
  kind text NOT NULL CHECK (kind IN ('companies', 'contacts', 'deals')),
  format text NOT NULL CHECK (format IN ('csv', 'jsonl')),
  status text NOT NULL DEFAULT 'uploaded'
    CHECK (status IN ('uploaded', 'queued', 'running', 'done', 'failed')),
  file bytea NOT NULL,
  file_bytes integer NOT NULL,
  total_rows integer NOT NULL,
  columns text[] NOT NULL,
  mapping jsonb NOT NULL DEFAULT '{}'::jsonb,
  options jsonb NOT NULL DEFAULT '{}'::jsonb,
  rows_done integer NOT NULL DEFAULT 0,
  rows_failed integer NOT NULL DEFAULT 0,
  rows_created integer NOT NULL DEFAULT 0,
  errors jsonb NOT NULL DEFAULT '[]'::jsonb,
  error text,
  created_by uuid,
  created_by_api_key uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  PRIMARY KEY (tenant_id, id)
);
ALTER TABLE companies ADD COLUMN import_id uuid, ADD COLUMN import_row integer;
ALTER TABLE contacts ADD COLUMN import_id uuid, ADD COLUMN import_row integer;
ALTER TABLE deals ADD COLUMN import_id uuid, ADD COLUMN import_row integer;
CREATE UNIQUE INDEX companies_import_row ON companies (tenant_id, import_id, import_row)
  WHERE import_id IS NOT NULL;
CREATE UNIQUE INDEX contacts_import_row ON contacts (tenant_id, import_id, import_row)
  WHERE import_id IS NOT NULL;
CREATE UNIQUE INDEX deals_import_row ON deals (tenant_id, import_id, import_row)
  WHERE import_id IS NOT NULL;
CREATE INDEX companies_domain ON companies (tenant_id, lower(domain)) WHERE domain IS NOT NULL;
CREATE INDEX contacts_email ON contacts (tenant_id, lower(email)) WHERE email IS NOT NULL;
CREATE TABLE exports (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  id uuid NOT NULL,
  kind text NOT NULL CHECK (kind IN ('companies', 'contacts', 'deals', 'stage_events')),
  format text NOT NULL CHECK (format IN ('csv', 'jsonl')),
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
  period_from timestamptz,
  period_to timestamptz,
  rows integer,
  file bytea,
  error text,
  created_by uuid,
  created_by_api_key uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  PRIMARY KEY (tenant_id, id)
)
"""


def _app_role() -> str:
    return str(op.get_context().config.attributes.get("app_role", "saas_app"))


def upgrade() -> None:
    for statement in statements(DDL):
        op.execute(statement)
    for table in ("imports", "exports"):
        for statement in enable_tenant_rls(table):
            op.execute(statement)
    for statement in grant_app_role(_app_role()):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE exports, imports")
    for table in ("companies", "contacts", "deals"):
        op.execute(f"DROP INDEX {table}_import_row")
        op.execute(f"ALTER TABLE {table} DROP COLUMN import_id, DROP COLUMN import_row")
    op.execute("DROP INDEX companies_domain")
    op.execute("DROP INDEX contacts_email")
