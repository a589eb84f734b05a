"""Index for deals that left a pipeline (transfers), used by analytics scopes and flows.

Revision ID: 0006
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Transfers are rare, so the partial index stays small.
    op.execute("CREATE INDEX IF NOT EXISTS stage_events_left_pipeline ON stage_events "
               "(tenant_id, from_pipeline_id, occurred_at) WHERE from_pipeline_id IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX stage_events_left_pipeline")
