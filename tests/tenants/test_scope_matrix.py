"""Scope x operation: every root field of the built schema, called by a key holding exactly
one scope (for every scope) and by each role, is allowed exactly when tests/tenants/
scope_matrix.py says so. Operations are generated from the schema (type-correct dummy
arguments), so a new root field without a row in the table fails the first test, and one
whose check is missing or wrong fails the second."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    Undefined,
)
from strawberry.relay import GlobalID

from saas.settings import Settings
from schema.context import Context
from schema.root import build_schema
from tenants.principal import Principal, Role
from tenants.scopes import ROLE_SCOPES, Scope
from tests.factories import TenantFactory
from tests.tenants.scope_matrix import ANY, EXPECTED, NODE, NONE, USER

ROOTS = ("Query", "Mutation", "Subscription")
SCALARS: dict[str, Any] = {
    "String": "x", "Int": 1, "Float": 1.0, "Boolean": False, "Decimal": "1",
    "DateTime": "2026-01-05T00:00:00+00:00", "Date": "2026-01-05", "JSON": {},
}


def root_fields(schema: GraphQLSchema) -> dict[str, tuple[str, GraphQLField]]:
    found = {}
    for root in ROOTS:
        type_ = schema.get_type(root)
        assert isinstance(type_, GraphQLObjectType)
        for name, field in type_.fields.items():
            found[f"{root}.{name}"] = (root, field)
    return found


def dummy(type_: GraphQLInputType) -> Any:
    """A type-correct value: ids are global ids of nothing, lists empty, inputs minimal."""
    if isinstance(type_, GraphQLNonNull):
        return dummy(type_.of_type)
    if isinstance(type_, GraphQLList):
        return []
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, GraphQLInputObjectType):
        return {name: dummy(f.type) for name, f in type_.fields.items()
                if (isinstance(f.type, GraphQLNonNull) and f.default_value is None
                and f.out_name is not None) or isinstance(f.type, GraphQLNonNull)}
    assert isinstance(type_, GraphQLScalarType)
    if type_.name == "ID":
        return str(GlobalID("Deal", str(uuid.uuid4())))
    return SCALARS[type_.name]


def _selection(type_: Any) -> str:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    if isinstance(type_, GraphQLObjectType) and "errors" in type_.fields:
        return "{ __typename errors { code } }"
    if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType):
        return "{ __typename }"
    return ""


def operation(key: str, field: GraphQLField) -> tuple[str, dict[str, Any]]:
    root, name = key.split(".")
    required = {a: arg for a, arg in field.args.items()
                if isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined}
    params = ", ".join(f"${a}: {arg.type}" for a, arg in required.items())
    args = ", ".join(f"{a}: ${a}" for a in required)
    keyword = root.lower() if root != "Query" else "query"
    document = (f"{keyword} Op{'(' + params + ')' if params else ''} "
                f"{{ {name}{'(' + args + ')' if args else ''} {_selection(field.type)} }}")
    return document, {a: dummy(arg.type) for a, arg in required.items()}


def codes(result: Any) -> set[str]:
    found = {str((e.extensions or {}).get("code")) for e in result.errors or []}
    assert "None" not in found, result.errors  # a malformed operation proves nothing
    text = json.dumps(result.data or {})
    for code in ("FORBIDDEN", "UNAUTHENTICATED"):
        if f'"code": "{code}"' in text:
            found.add(code)
    return found


async def run(schema: Any, context: Context, root: str, document: str,
              variables: dict[str, Any]) -> set[str]:
    if root != "Subscription":
        return codes(await schema.execute(document, variable_values=variables,
                                          context_value=context))
    stream = await schema.subscribe(document, variable_values=variables, context_value=context)
    if not hasattr(stream, "__anext__"):
        return codes(stream)
    try:
        first = await asyncio.wait_for(stream.__anext__(), 0.3)
    except TimeoutError:
        return set()  # streaming, no error: allowed
    finally:
        await stream.aclose()
    return codes(first)


def test_every_root_field_has_exactly_one_expected_scope() -> None:
    fields = set(root_fields(build_schema(Settings())._schema))  # type: ignore[attr-defined]
    missing = sorted(fields - set(EXPECTED))
    stale = sorted(set(EXPECTED) - fields)
    assert missing == [], f"add these root fields to tests/tenants/scope_matrix.py: {missing}"
    assert stale == [], f"these rows name no root field any more: {stale}"


def allowed(expected: Scope | str, principal: Principal) -> bool:
    if expected == ANY:
        return True
    if expected == USER:
        return not principal.is_api_key
    assert isinstance(expected, Scope)
    return expected in principal.granted


@pytest.fixture
async def principals(tenants: TenantFactory) -> dict[str, Principal]:
    t = await tenants.create()
    out: dict[str, Principal] = {
        f"key {s.value}": Principal(tenant_id=t.id, api_key_id=uuid.uuid4(),
                                    scopes=frozenset({s.value}))
        for s in Scope}
    out["key read"] = Principal(tenant_id=t.id, api_key_id=uuid.uuid4(),
                                scopes=frozenset({"read"}))
    out["key read_write"] = Principal(tenant_id=t.id, api_key_id=uuid.uuid4(),
                                      scopes=frozenset({"read_write"}))
    out["admin"] = t.admin
    out["manager"] = await t.add_user(Role.MANAGER)
    out["rep"] = await t.add_user(Role.REP)
    return out


async def test_each_scope_and_role_can_do_exactly_what_the_table_says(
    app: Any, principals: dict[str, Principal],
) -> None:
    schema = build_schema(Settings(environment="test"))
    services = app.state.services
    wrong: list[str] = []
    checked = 0
    for key, (root, field) in sorted(root_fields(schema._schema).items()):  # type: ignore[attr-defined]
        expected = EXPECTED[key]
        if expected in (NODE, NONE):
            continue
        document, variables = operation(key, field)
        for who, principal in principals.items():
            got = await run(schema, Context(services=services, principal=principal), root,
                            document, variables)
            assert "UNAUTHENTICATED" not in got, (key, who, got)
            if ("FORBIDDEN" not in got) != allowed(expected, principal):
                wrong.append(f"{key} as {who}: {'allowed' if 'FORBIDDEN' not in got else 'refused'}")
            checked += 1
    assert wrong == []
    assert checked >= 50 * len(principals)


async def test_fields_without_credentials_need_none_and_the_others_all_do(app: Any) -> None:
    schema = build_schema(Settings(environment="test"))
    services = app.state.services
    for key, (root, field) in sorted(root_fields(schema._schema).items()):  # type: ignore[attr-defined]
        document, variables = operation(key, field)
        got = await run(schema, Context(services=services), root, document, variables)
        if EXPECTED[key] == NONE:
            assert "FORBIDDEN" not in got, key
        else:
            assert "UNAUTHENTICATED" in got, key


def test_role_scopes_are_what_the_docs_say() -> None:
    assert ROLE_SCOPES["admin"] == frozenset(Scope)
    assert Scope.USERS_ADMIN not in ROLE_SCOPES["manager"] | ROLE_SCOPES["rep"]
    assert ROLE_SCOPES["rep"] == ROLE_SCOPES["manager"] - {Scope.TARGETS_WRITE,
                                                           Scope.CAMPAIGNS_WRITE}
