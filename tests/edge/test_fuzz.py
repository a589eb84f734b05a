"""Fuzz every root field (hypothesis-graphql): valid and invalid operations, a bounded number
of examples per field, against a running server. No answer may be a 5xx or INTERNAL."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest
from graphql import is_non_null_type, parse_value
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries

from saas.settings import Settings
from schema.root import build_schema
from tests.factories import TenantFactory
from tests.live.support import ApiServer

SCHEMA = build_schema(Settings(environment="test"))._schema
QUERIES = sorted(SCHEMA.query_type.fields)
MUTATIONS = sorted(SCHEMA.mutation_type.fields) if SCHEMA.mutation_type else []
EXAMPLES = 8  # per field and mode: the whole run stays within a few minutes in CI


def _text_or(values: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.one_of(values, st.text(max_size=30)).map(nodes.String)


SCALARS = {
    "Decimal": _text_or(st.decimals(allow_nan=True, allow_infinity=True, places=2).map(str)),
    "Date": _text_or(st.dates(min_value=dt.date(1, 1, 1)).map(dt.date.isoformat)),
    "DateTime": _text_or(st.datetimes(timezones=st.just(dt.UTC)).map(dt.datetime.isoformat)),
    "JSON": st.sampled_from(["{seats: 3}", "[1, 2]", '"x"', "5", "null", '{a: {b: ["\\u0000"]}}',
                             "{colour: true}"]).map(parse_value),
}


@pytest.fixture(scope="module")
async def fuzz_callers(tenants_module: TenantFactory) -> dict[str, dict[str, str]]:
    """One tenant for all queries; each mutation field its own (fuzzed logouts, password
    changes and deactivations must not spoil another field's run)."""
    reader = (await tenants_module.create()).admin_caller.headers
    callers = {name: reader for name in QUERIES}
    for name in MUTATIONS:
        callers["mutation:" + name] = (await tenants_module.create()).admin_caller.headers
    return callers


@pytest.fixture(scope="module")
def tenants_module(db: Any, settings: Settings) -> TenantFactory:
    return TenantFactory(db=db, settings=settings, client=None)  # type: ignore[arg-type]


def _check(client: httpx.Client, document: str, headers: dict[str, str]) -> None:
    response = client.post("/graphql", json={"query": document}, headers=headers)
    assert response.status_code < 500, (document, response.text[:500])
    body = response.json()
    codes = [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]
    assert "INTERNAL" not in codes, (document, body)


def _cases() -> list[tuple[Mode, str, str]]:
    """Valid operations for every root field; invalid ones where there are required
    arguments to get wrong (hypothesis-graphql's negative mode needs them)."""
    out = []
    for kind, root in (("query", SCHEMA.query_type), ("mutation", SCHEMA.mutation_type)):
        for name, definition in sorted(root.fields.items()) if root else ():
            out.append((Mode.POSITIVE, kind, name))
            if any(is_non_null_type(a.type) for a in definition.args.values()):
                out.append((Mode.NEGATIVE, kind, name))
    return out


@pytest.mark.parametrize("mode,kind,field", _cases())
def test_no_generated_operation_gets_a_5xx_or_internal(
    kind: str, field: str, mode: Mode, edge_server: ApiServer,
    fuzz_callers: dict[str, dict[str, str]],
) -> None:
    headers = fuzz_callers[field if kind == "query" else "mutation:" + field]
    generate = queries if kind == "query" else mutations
    strategy = generate(SCHEMA, fields=[field], custom_scalars=SCALARS, mode=mode)
    with httpx.Client(base_url=edge_server.http, timeout=30) as client:

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(document=strategy)
        def run(document: object) -> None:
            _check(client, str(document), headers)

        run()


def test_the_fuzz_covers_every_root_field() -> None:
    assert len(QUERIES) + len(MUTATIONS) > 80
    assert json.dumps(sorted(SCALARS)) == json.dumps(["Date", "DateTime", "Decimal", "JSON"])
