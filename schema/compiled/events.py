"""`stageEvents(after, first, pipelineId, kinds)` as one statement: the page of events, its
end cursor and hasMore built in PostgreSQL.

The rows are saas.deals.events.after_query's, the resolver's own definition (seq after
the cursor, the pipeline moved in or out of, the kinds, oldest first, at most
min(first + 1, MAX_PAGE) rows). As in the resolver, the end cursor is the last shown
event's seq, or the cursor given when the page is empty. Input the resolver would refuse
(a cursor that is not a seq, `first` out of range, an id that is not a pipeline's) is left
to it (`None`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, literal_column, select, text

from saas.deals import events
from saas.errors import DomainError
from schema.compiled.objects import ObjectCompiler, Row
from schema.compiled.selection import Field
from schema.deals.api import event_cursor
from schema.nodes import decode_id


def compile_stage_events(c: ObjectCompiler, f: Field) -> Select[Any] | None:
    args = c.selector.arguments(f)
    first = args["first"]
    if not 0 < first <= events.MAX_PAGE:
        return None
    try:
        after_seq = event_cursor(args["after"])
        pipeline = args.get("pipelineId")
        query = events.after_query(
            after_seq=after_seq, limit=first + 1,
            pipeline_id=decode_id(pipeline, "Pipeline", field="pipelineId") if pipeline else None,
            kinds=[k.value for k in args["kinds"]] if args.get("kinds") else None)
    except DomainError:
        return None
    alias = c.alias("se")
    rows = query.add_columns(literal_column("row_number() OVER (ORDER BY stage_events.seq)")
                             .label("_rn")).subquery(alias)
    shown = f"FILTER (WHERE {alias}._rn <= {first})"
    event = Row(alias)
    after = c.param(args["after"], "text")
    page = c.object("StageEventPage", f, event, extra={
        "events": lambda sub: (f"coalesce(json_agg({c.object('StageEvent', sub, event)} "
                               f"ORDER BY {alias}.seq) {shown}, '[]'::json)"),
        "endCursor": lambda _: (f"coalesce((array_agg(({alias}.seq)::text ORDER BY "
                                f"{alias}.seq DESC) {shown})[1], {after})"),
        "hasMore": lambda _: f"(count({alias}.seq) > {first})",
    })
    # GROUP BY (): one row whatever the page holds (an empty page still has its cursor).
    return select(c.sql(f"({page})::text")).select_from(rows).group_by(text("()"))
