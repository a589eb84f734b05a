"""Covering index for the forecast's event read: a pipeline's stage events in deal order.

The forecast job reads every stage event of a pipeline except 'updated' ones (about a
million for a 100k-deal tenant), ordered by (deal_id, seq) so that the deals are numbered
as they stream past (saas/forecasting/data.py). With this index that read is an index-only
scan with no sort and no heap visits (on pages the visibility map marks all-visible).
'updated' events never change a stage, so they are left out of the index.

Built CONCURRENTLY, outside the migration's transaction, so stage events can still be
written while it builds.

Revision ID: 0008
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS stage_events_forecast ON stage_events "
                   "(tenant_id, pipeline_id, deal_id, seq) "
                   "INCLUDE (occurred_at, to_stage_id, kind) WHERE kind <> 'updated'")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS stage_events_forecast")
