"""Tenants get a plan, which picks their rate-limit budgets (RATE_LIMIT_PLANS).

Revision ID: 0020_issue17
"""

from alembic import op

revision = "0020_issue17"
down_revision = "0019_issue16"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE tenants ADD COLUMN plan text NOT NULL DEFAULT 'standard' "
               "CHECK (plan ~ '^[a-z][a-z0-9_-]{0,40}$')")


def downgrade() -> None:
    op.execute("ALTER TABLE tenants DROP COLUMN plan")
