"""Deal lifecycle: archive (soft delete) and restore, permanent deletion, field history.

- deals.archived_at: an archived deal is hidden from boards, lists, analytics, forecasts and
  campaigns, keeps its history and can be restored. A partial index finds a pipeline's
  archived deals (the few that the forecast's event read leaves out).
- stage_events.kind gains 'deleted' (archived, or with data.permanent removed for good) and
  'restored', so live boards and the log see both.
- stage_events no longer references deals: a permanently deleted deal's events go with it,
  and the one 'deleted' event that says so outlives the row (a tombstone for live boards and
  for readers following the cursor).
- campaign_enrollments.stop_reason gains 'deal_archived'.
- board_rows (migration 0009) shows and counts active deals only.

Revision ID: 0012_issue15_lifecycle
"""

from alembic import op

revision = "0012_issue15_lifecycle"
down_revision = "0011"
branch_labels = None
depends_on = None

_KINDS = "'created', 'moved', 'lost', 'reopened', 'updated', 'transferred'"
_REASONS = ("'replied', 'reopened', 'deal_moved', 'activity_logged', 'unsubscribed', "
            "'campaign_paused', 'no_recipient', 'delivery_failed'")

BOARD = """
CREATE OR REPLACE FUNCTION board_rows(_tenant uuid, _pipeline uuid, _per_stage integer)
RETURNS TABLE (
  stage_id uuid, stage_name text, "position" integer, kind text, probability numeric,
  rotting_days integer, pipeline_name text, deal_count bigint, id uuid, title text,
  amount numeric, currency character(3), temperature text, labels text[], version integer,
  expected_close_date date, probability_override numeric, stage_entered_at timestamptz,
  updated_at timestamptz, created_at timestamptz, owner_id uuid, contact_id uuid,
  company_id uuid, lost_reason text, custom_fields jsonb, owner_name text, owner_email text,
  owner_role text, owner_team_id uuid, owner_is_active boolean, contact_name text,
  contact_email text, contact_phone text, contact_company_id uuid,
  contact_unsubscribed_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  PERFORM set_config('app.tenant_id', _tenant::text, true);
  RETURN QUERY
    SELECT s.id AS stage_id, s.name AS stage_name, s.position, s.kind, s.probability,
           s.rotting_days, p.name AS pipeline_name, cnt.n AS deal_count,
           d.id, d.title, d.amount, d.currency, d.temperature, d.labels, d.version,
           d.expected_close_date, d.probability_override, d.stage_entered_at, d.updated_at,
           d.created_at, d.owner_id, d.contact_id, d.company_id, d.lost_reason,
           d.custom_fields, u.name AS owner_name, u.email AS owner_email, u.role AS owner_role,
           u.team_id AS owner_team_id, u.is_active AS owner_is_active,
           c.name AS contact_name, c.email AS contact_email, c.phone AS contact_phone,
           c.company_id AS contact_company_id, c.unsubscribed_at AS contact_unsubscribed_at
    FROM pipelines p
    JOIN stages s ON s.pipeline_id = p.id AND s.archived_at IS NULL
    LEFT JOIN LATERAL (
        SELECT count(*) AS n FROM deals x
        WHERE x.pipeline_id = p.id AND x.stage_id = s.id AND x.archived_at IS NULL
    ) cnt ON true
    LEFT JOIN LATERAL (
        SELECT * FROM deals x
        WHERE x.pipeline_id = p.id AND x.stage_id = s.id AND x.archived_at IS NULL
        ORDER BY x.updated_at DESC, x.id DESC LIMIT _per_stage
    ) d ON true
    LEFT JOIN users u ON u.id = d.owner_id
    LEFT JOIN contacts c ON c.id = d.contact_id
    WHERE p.id = _pipeline
    ORDER BY s.position, d.updated_at DESC, d.id DESC
    ;
END
$$
"""


def upgrade() -> None:
    op.execute("ALTER TABLE deals ADD COLUMN archived_at timestamptz")
    op.execute("CREATE INDEX deals_archived ON deals (tenant_id, pipeline_id) "
               "WHERE archived_at IS NOT NULL")
    op.execute("ALTER TABLE stage_events DROP CONSTRAINT stage_events_kind_check")
    op.execute("ALTER TABLE stage_events ADD CONSTRAINT stage_events_kind_check "
               f"CHECK (kind IN ({_KINDS}, 'deleted', 'restored'))")
    op.execute("ALTER TABLE stage_events DROP CONSTRAINT stage_events_tenant_id_deal_id_fkey")
    op.execute("ALTER TABLE campaign_enrollments "
               "DROP CONSTRAINT campaign_enrollments_stop_reason_check")
    op.execute("ALTER TABLE campaign_enrollments ADD CONSTRAINT "
               f"campaign_enrollments_stop_reason_check CHECK (stop_reason IN ({_REASONS}, "
               "'deal_archived'))")
    op.execute(BOARD)


def downgrade() -> None:
    from importlib import import_module

    previous = import_module("saas.migrations.versions.0009_board_rows")
    op.execute(previous.FUNCTION)
    op.execute("ALTER TABLE campaign_enrollments "
               "DROP CONSTRAINT campaign_enrollments_stop_reason_check")
    op.execute("ALTER TABLE campaign_enrollments ADD CONSTRAINT "
               f"campaign_enrollments_stop_reason_check CHECK (stop_reason IN ({_REASONS}))")
    op.execute("DELETE FROM stage_events e WHERE NOT EXISTS "
               "(SELECT 1 FROM deals d WHERE d.tenant_id = e.tenant_id AND d.id = e.deal_id)")
    op.execute("ALTER TABLE stage_events ADD CONSTRAINT stage_events_tenant_id_deal_id_fkey "
               "FOREIGN KEY (tenant_id, deal_id) REFERENCES deals (tenant_id, id)")
    op.execute("DELETE FROM stage_events WHERE kind IN ('deleted', 'restored')")
    op.execute("ALTER TABLE stage_events DROP CONSTRAINT stage_events_kind_check")
    op.execute(f"ALTER TABLE stage_events ADD CONSTRAINT stage_events_kind_check "
               f"CHECK (kind IN ({_KINDS}))")
    op.execute("DROP INDEX deals_archived")
    op.execute("ALTER TABLE deals DROP COLUMN archived_at")
