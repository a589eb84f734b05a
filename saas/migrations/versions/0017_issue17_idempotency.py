"""Idempotency keys: the first response of a mutation per (tenant, principal, key), 24 h.

The row is inserted in the same transaction as the mutation's effects and holds its
response, so a retry either finds the committed response or (while the first is still
running) waits on the row's unique index until it commits or rolls back: exactly once,
across API processes.

Revision ID: 0017_issue17
"""

from alembic import op

from tenants.rls import enable_tenant_rls, grant_app_role, statements

revision = "0017_issue17"
down_revision = "0016_issue17"
branch_labels = None
depends_on = None

DDL = """
CREATE TABLE idempotency_keys (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  principal text NOT NULL,
  key text NOT NULL,
  request_hash text NOT NULL,
  status_code integer,
  response bytea,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, principal, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (tenant_id, expires_at)
"""


def _app_role() -> str:
    return str(op.get_context().config.attributes.get("app_role", "saas_app"))


def upgrade() -> None:
    for statement in statements(DDL):
        op.execute(statement)
    for statement in enable_tenant_rls("idempotency_keys"):
        op.execute(statement)
    for statement in grant_app_role(_app_role()):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_keys")
