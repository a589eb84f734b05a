"""`board(pipelineId, dealsPerStage)` as one statement over board_rows (migration 0009).

board_rows stays the only definition of which cards a board shows and in what order: the
statement aggregates its rows (WITH ORDINALITY keeps the order the resolver sees) into the
response JSON. Anything the resolver would answer with an error -- an id that is not a
pipeline's, dealsPerStage out of range, a pipeline that is not found -- is left to the
resolver (`None`), so errors stay exactly the resolver's.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text

from saas.deals.board import MAX_PER_STAGE
from saas.errors import NotFound
from schema.compiled.objects import ObjectCompiler, Row
from schema.compiled.selection import Field
from schema.nodes import decode_id

_OWNER = {"id": "r.owner_id", "email": "r.owner_email", "name": "r.owner_name",
          "role": "r.owner_role", "team_id": "r.owner_team_id",
          "is_active": "r.owner_is_active"}
_CONTACT = {"id": "r.contact_id", "name": "r.contact_name", "email": "r.contact_email",
            "phone": "r.contact_phone", "company_id": "r.contact_company_id",
            "unsubscribed_at": "r.contact_unsubscribed_at",
            # board_rows carries the deal's version only (r.version).
            "version": "(SELECT cv.version FROM contacts cv WHERE cv.id = r.contact_id)"}
_STAGE = {"id": "r.stage_id", "name": "r.stage_name", "position": "r.position",
          "kind": "r.kind", "probability": "r.probability", "rotting_days": "r.rotting_days",
          # board_rows shows active stages only (Stage.from_row of a board column).
          "archived_at": "NULL::timestamptz"}
_GROUP = "r.stage_id, r.stage_name, r.position, r.kind, r.probability, r.rotting_days, " \
         "r.deal_count, r.pipeline_name"


def compile_board(c: ObjectCompiler, f: Field, tenant: object) -> TextClause | None:
    """The board's JSON text (NULL when the pipeline is not found), or None: resolve it."""
    args = c.selector.arguments(f)
    per_stage = args["dealsPerStage"]
    if not 0 <= per_stage <= MAX_PER_STAGE:
        return None
    try:
        pipeline_id = decode_id(args["pipelineId"], "Pipeline", field="pipelineId")
    except NotFound:
        return None
    pipeline = c.param(pipeline_id, "uuid")
    stage = Row("r", _STAGE | {"pipeline_id": pipeline})
    card = Row("r", {"pipeline_id": pipeline},
               joined={"owner": Row("r", _OWNER), "contact": Row("r", _CONTACT),
                       "stage": stage})

    def deals(sub: Field) -> str:
        cards = c.object("Deal", sub, card)
        return (f"coalesce(json_agg({cards} ORDER BY r.ordinality) "
                "FILTER (WHERE r.id IS NOT NULL), '[]'::json)")

    # One aggregate per response key of `columns` (aliases may select different fields).
    keys = [sub for sub in c.selector.fields(c.type("Board"), f.nodes) if sub.name == "columns"]
    inner = [c.object("BoardColumn", sub, stage, extra={
        "stage": lambda s: c.object("Stage", s, stage),
        "dealCount": lambda s: "r.deal_count",
        "deals": deals,
    }) for sub in keys] or ["NULL::json"]
    board = c.object("Board", f, Row("c"), extra={
        "pipelineId": lambda sub: c.param(args["pipelineId"], "text"),
        "pipelineName": lambda sub: "min(c.pipeline_name)",
        "columns": lambda sub: f"json_agg(c.col{keys.index(sub)} ORDER BY c.ord)",
    })
    tenant_sql = c.param(tenant, "uuid")
    per = c.param(per_stage, "integer")
    aggregates = ", ".join(f"{e} AS col{i}" for i, e in enumerate(inner))
    return text(
        f"SELECT ({board})::text FROM ("
        f"SELECT min(r.ordinality) AS ord, r.pipeline_name, {aggregates} "
        f"FROM board_rows({tenant_sql}, {pipeline}, {per}) WITH ORDINALITY AS r "
        f"GROUP BY {_GROUP}) c HAVING count(*) > 0")
