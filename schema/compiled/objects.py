"""SQL expressions that build the JSON of table-backed object types, field by field.

Each expression renders a value exactly as the resolver path serialises it: global ids as
base64 of "Type:uuid", DateTime as Python's isoformat in UTC, Decimal as its text, enums
by name, `customFields` as the resolver's `value or {}`. A field this module does not know
raises Unsupported, so the operation goes through the resolvers instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLObjectType, GraphQLSchema
from sqlalchemy import TextClause, text

from schema.compiled.selection import Field, Selector, Unsupported

# json_build_object takes at most 100 arguments (PostgreSQL's FUNC_MAX_ARGS).
MAX_KEYS = 50
_PARAM = re.compile(r":(p\d+)\b")


def quote(key: str) -> str:
    """A response key or type name as a SQL string literal (GraphQL names are
    [_A-Za-z][_0-9A-Za-z]*, so this is only a guard)."""
    if not key.replace("_", "a").isalnum() or not key.isascii():
        raise Unsupported(f"name {key!r}")
    return f"'{key}'"


def gid(type_name: str, expr: str) -> str:
    # NULL stays NULL (concatenation, convert_to and encode are strict). A 36-character
    # uuid with a short type name stays under base64's 76-character line.
    prefix = quote(type_name)[:-1] + ":'"
    return f"encode(convert_to({prefix} || {expr}::text, 'UTF8'), 'base64')"


def iso_datetime(expr: str, sep: str = "T") -> str:
    """datetime.isoformat(sep) of a timestamptz as asyncpg reads it: in UTC, no fraction
    when it is zero, and +/-infinity as datetime.max/min (asyncpg's mapping)."""
    utc = f"({expr} AT TIME ZONE 'UTC')"
    return (f"(CASE WHEN {expr} = 'infinity' THEN '9999-12-31{sep}23:59:59.999999+00:00' "
            f"WHEN {expr} = '-infinity' THEN '0001-01-01{sep}00:00:00+00:00' ELSE "
            f"to_char({utc}, 'YYYY-MM-DD\"{sep}\"HH24:MI:SS') || CASE WHEN "
            f"extract(microseconds FROM {expr})::bigint % 1000000 = 0 THEN '' "
            f"ELSE to_char({utc}, '.US') END || '+00:00' END)")


def iso_date(expr: str) -> str:
    """date.isoformat(); +/-infinity as date.max/min, as asyncpg reads them."""
    return (f"(CASE WHEN {expr} = 'infinity' THEN '9999-12-31' WHEN {expr} = '-infinity' "
            f"THEN '0001-01-01' ELSE to_char({expr}, 'YYYY-MM-DD') END)")


def decimal(expr: str) -> str:
    return f"({expr})::text"


def enum_name(expr: str) -> str:
    return f"upper({expr})"


def json_or_empty(expr: str) -> str:
    """The resolver's `value or {}`: every falsy JSON value becomes {}."""
    return (f"CASE WHEN {expr} IS NULL OR {expr} IN ('{{}}'::jsonb, '[]'::jsonb, '0'::jsonb, "
            f"'\"\"'::jsonb, 'false'::jsonb, 'null'::jsonb) THEN '{{}}'::jsonb ELSE {expr} END")


@dataclass(frozen=True)
class Row:
    """Where one object's columns are: `alias.column`, unless `names` says otherwise.
    `joined` names the relations whose columns the row already carries (the board's rows
    have their owner's and contact's columns, see board_rows in migration 0009)."""

    alias: str
    names: Mapping[str, str] = field(default_factory=dict)
    joined: Mapping[str, Row] = field(default_factory=dict)

    def __getitem__(self, column: str) -> str:
        return self.names.get(column) or f"{self.alias}.{column}"


Scalar = Callable[[Row], str]
Nested = Callable[["ObjectCompiler", Row, Field], str]


def _column(name: str) -> Scalar:
    return lambda row: row[name]


SCALARS: dict[str, dict[str, Scalar]] = {
    "Deal": {
        "id": lambda r: gid("Deal", r["id"]),
        "title": _column("title"),
        "amount": lambda r: decimal(r["amount"]),
        "currency": _column("currency"),
        "temperature": lambda r: enum_name(r["temperature"]),
        "labels": lambda r: f"coalesce(to_json({r['labels']}), '[]'::json)",
        "customFields": lambda r: json_or_empty(r["custom_fields"]),
        "expectedCloseDate": lambda r: iso_date(r["expected_close_date"]),
        "probabilityOverride": lambda r: decimal(r["probability_override"]),
        "lostReason": _column("lost_reason"),
        "version": _column("version"),
        "stageEnteredAt": lambda r: iso_datetime(r["stage_entered_at"]),
        "createdAt": lambda r: iso_datetime(r["created_at"]),
        "updatedAt": lambda r: iso_datetime(r["updated_at"]),
    },
    "User": {
        "id": lambda r: gid("User", r["id"]),
        "email": _column("email"),
        "name": _column("name"),
        "role": lambda r: enum_name(r["role"]),
        "teamId": lambda r: gid("Team", r["team_id"]),
        "isActive": _column("is_active"),
    },
    "Contact": {
        "id": lambda r: gid("Contact", r["id"]),
        "name": _column("name"),
        "email": _column("email"),
        "phone": _column("phone"),
        "unsubscribed": lambda r: f"({r['unsubscribed_at']} IS NOT NULL)",
        "version": _column("version"),
    },
    "Company": {
        "id": lambda r: gid("Company", r["id"]),
        "name": _column("name"),
        "domain": _column("domain"),
        "version": _column("version"),
    },
    "Stage": {
        "id": lambda r: gid("Stage", r["id"]),
        "name": _column("name"),
        "position": _column("position"),
        "kind": lambda r: enum_name(r["kind"]),
        "probability": lambda r: decimal(r["probability"]),
        "rottingDays": _column("rotting_days"),
        "archived": lambda r: f"({r['archived_at']} IS NOT NULL)",
    },
    "Pipeline": {
        "id": lambda r: gid("Pipeline", r["id"]),
        "name": _column("name"),
    },
    # StageEvent.changes maps names and ids in Python (field_changes): resolvers.
    "StageEvent": {
        "cursor": lambda r: f"({r['seq']})::text",
        "seq": _column("seq"),
        "kind": lambda r: enum_name(r["kind"]),
        "dealId": lambda r: gid("Deal", r["deal_id"]),
        "pipelineId": lambda r: gid("Pipeline", r["pipeline_id"]),
        "fromStageId": lambda r: gid("Stage", r["from_stage_id"]),
        "toStageId": lambda r: gid("Stage", r["to_stage_id"]),
        "fromPipelineId": lambda r: gid("Pipeline", r["from_pipeline_id"]),
        "actorUserId": lambda r: gid("User", r["actor_user_id"]),
        "actorApiKeyId": lambda r: gid("ApiKey", r["actor_api_key_id"]),
        "amount": lambda r: decimal(r["amount"]),
        "currency": _column("currency"),
        "lostReason": _column("lost_reason"),
        "data": _column("data"),
        "occurredAt": lambda r: iso_datetime(r["occurred_at"]),
    },
}


def _by_id(table: str, type_name: str, key: str, relation: str | None = None) -> Nested:
    """A to-one relation: the row the resolvers' DataLoader would find (RLS applies), or
    null; from the row's own joined columns when it carries them."""

    def compile_nested(c: ObjectCompiler, row: Row, f: Field) -> str:
        joined = row.joined.get(relation) if relation else None
        if joined is not None:
            return (f"CASE WHEN {joined['id']} IS NULL THEN NULL "
                    f"ELSE {c.object(type_name, f, joined)} END")
        alias = c.alias(table[:2])
        inner = c.object(type_name, f, Row(alias))
        return f"(SELECT {inner} FROM {table} {alias} WHERE {alias}.id = {row[key]})"

    return compile_nested


def _stages(c: ObjectCompiler, row: Row, f: Field) -> str:
    """Pipeline.stages: saas.pipelines.service.list_stages (by position, then id)."""
    include_archived = bool(c.selector.arguments(f).get("includeArchived"))
    alias = c.alias("st")
    inner = c.object("Stage", f, Row(alias))
    active = "" if include_archived else f" AND {alias}.archived_at IS NULL"
    return (f"(SELECT coalesce(json_agg({inner} ORDER BY {alias}.position, {alias}.id), "
            f"'[]'::json) FROM stages {alias} WHERE {alias}.pipeline_id = {row['id']}{active})")


def _history(c: ObjectCompiler, row: Row, f: Field) -> str:
    """Deal.history: saas.deals.events.history (the deal's events by seq)."""
    alias = c.alias("ev")
    inner = c.object("StageEvent", f, Row(alias))
    return (f"(SELECT coalesce(json_agg({inner} ORDER BY {alias}.seq), '[]'::json) "
            f"FROM stage_events {alias} WHERE {alias}.deal_id = {row['id']})")


NESTED: dict[str, dict[str, Nested]] = {
    "Deal": {
        "stage": _by_id("stages", "Stage", "stage_id", "stage"),
        "pipeline": _by_id("pipelines", "Pipeline", "pipeline_id"),
        "owner": _by_id("users", "User", "owner_id", "owner"),
        "contact": _by_id("contacts", "Contact", "contact_id", "contact"),
        "company": _by_id("companies", "Company", "company_id"),
        "history": _history,
    },
    "Contact": {"company": _by_id("companies", "Company", "company_id")},
    "Pipeline": {"stages": _stages},
}


class ObjectCompiler:
    """Builds json_build_object expressions for selections; one per statement (aliases
    are numbered across the statement)."""

    def __init__(self, schema: GraphQLSchema, selector: Selector) -> None:
        self.schema = schema
        self.selector = selector
        self._aliases = 0
        self.params: dict[str, Any] = {}

    def alias(self, prefix: str) -> str:
        self._aliases += 1
        return f"{prefix}{self._aliases}"

    def param(self, value: Any, sql_type: str) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"CAST(:{name} AS {sql_type})"

    def bind(self, clause: TextClause) -> TextClause:
        """`clause` with the parameters (param()) its text names bound."""
        names = set(_PARAM.findall(clause.text))
        return clause.bindparams(**{k: v for k, v in self.params.items() if k in names})

    def sql(self, fragment: str) -> TextClause:
        """`fragment` as a bound clause, for an expression inside a SQLAlchemy statement."""
        return self.bind(text(fragment))

    def type(self, name: str) -> GraphQLObjectType:
        found = self.schema.get_type(name)
        assert isinstance(found, GraphQLObjectType), name
        return found

    def build(self, pairs: list[tuple[str, str]]) -> str:
        if len(pairs) > MAX_KEYS:
            raise Unsupported("too many keys for one json_build_object")
        return "json_build_object(" + ", ".join(f"{quote(k)}, {v}" for k, v in pairs) + ")"

    def object(self, type_name: str, f: Field, row: Row,
               extra: Mapping[str, Callable[[Field], str]] | None = None) -> str:
        """The JSON of `f`'s selection on a `type_name` object at `row`; `extra` compiles
        fields that only make sense where the object is (a board's columns)."""
        scalars = SCALARS.get(type_name, {})
        nested = NESTED.get(type_name, {})
        pairs = []
        for sub in self.selector.fields(self.type(type_name), f.nodes):
            if sub.name == "__typename":
                pairs.append((sub.key, quote(type_name)))
            elif extra is not None and sub.name in extra:
                pairs.append((sub.key, extra[sub.name](sub)))
            elif sub.name in scalars:
                pairs.append((sub.key, scalars[sub.name](row)))
            elif sub.name in nested:
                pairs.append((sub.key, nested[sub.name](self, row, sub)))
            else:
                raise Unsupported(f"{type_name}.{sub.name}")
        return self.build(pairs)
