"""Exchange rates a tenant sets, with the date each takes effect (conversion to its base
currency: Deal.amountInBaseCurrency, analytics totals in the base currency).

Revision ID: 0015_issue15_exchange_rates
"""

from alembic import op

from tenants.rls import enable_tenant_rls, grant_app_role

revision = "0015_issue15_exchange_rates"
down_revision = "0014_issue15_configuration"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE exchange_rates (
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  currency char(3) NOT NULL,
  valid_from date NOT NULL,
  rate numeric(24, 10) NOT NULL CHECK (rate > 0),
  set_by uuid,
  set_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, currency, valid_from)
)""")
    for statement in enable_tenant_rls("exchange_rates"):
        op.execute(statement)
    role = str(op.get_context().config.attributes.get("app_role", "saas_app"))
    for statement in grant_app_role(role):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE exchange_rates")
