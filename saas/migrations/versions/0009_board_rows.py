"""The board's rows as a function that enters the tenant first: board_rows(tenant, pipeline, n).

The board statement used to set the tenant with its own `set_config` statement. As a
PL/pgSQL function it sets `app.tenant_id` (transaction-local) and then runs the board query
under RLS, in order, in one statement. That is what lets a board cache miss cost BEGIN,
board_rows, COMMIT after its one-statement version check (schema/response_cache.py), and it
is the only definition of the board query (saas/deals/board.py calls it). SECURITY INVOKER:
the caller's RLS applies; setting the tenant gives the app role nothing it could not do with
set_config already. `#variable_conflict use_column`: the output column names are also
PL/pgSQL variables. A change to the board's columns is a new migration that replaces it.

Revision ID: 0009
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

FUNCTION = """
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
        SELECT count(*) AS n FROM deals x WHERE x.pipeline_id = p.id AND x.stage_id = s.id
    ) cnt ON true
    LEFT JOIN LATERAL (
        SELECT * FROM deals x WHERE x.pipeline_id = p.id AND x.stage_id = s.id
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
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION board_rows(uuid, uuid, integer)")
