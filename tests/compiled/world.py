"""The data the compiled-reads tests read: tenants whose deals cover what rendering can get
wrong (nulls, ties, zero and non-zero microseconds, falsy and nested custom fields,
unicode, archived stages, empty pipelines, other tenants' ids)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from schema.nodes import decode_id
from tenants.principal import Principal, Role
from tests.deals.ops import CREATE_SEGMENT, create_deal, default_pipeline, move, stage_ids
from tests.factories import Caller, TenantFactory, TenantHandle

CUSTOM_VALUES: list[Any] = [
    {}, [], 0, "", False, None, {"a": 1, "b": [1, 2.5, "x"]}, 1.5e-7, {"deep": {"n": None}},
    "ünïcødé ✓", 12345678901234567890, [{}], -0.0,
]


@dataclass
class World:
    tenant: TenantHandle
    pipelines: list[str]  # global ids: the default pipeline, a second one, an empty one
    stages: dict[str, str]
    users: list[Principal]
    team_id: str
    deals: list[str] = field(default_factory=list)
    contacts: list[str] = field(default_factory=list)
    companies: list[str] = field(default_factory=list)
    callers: dict[str, Caller] = field(default_factory=dict)


def gid(type_name: str, raw: str) -> str:
    return base64.b64encode(f"{type_name}:{raw}".encode()).decode()


async def build(factory: TenantFactory, owner_conn: asyncpg.Connection, *,
                deals: int) -> World:
    t = await factory.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    stages = stage_ids(pipeline)
    team = await t.add_team("North")
    manager = await t.add_user(Role.MANAGER, team_id=team, name="Mía Manager")
    rep = await t.add_user(Role.REP, team_id=team, name="Rep \"quoted\"")
    other = await t.add_user(Role.REP, name="Teamless")
    companies = []
    # Ties in lower(name) ("Acme"/"acme"), and names whose lowercase differs between
    # Python and PostgreSQL ("İ"), for the contact and company connections.
    for name, domain in [("Acme", "acme.test"), ("Zed", None), ("acme", "ACME.example"),
                         ("İstanbul ẞtraße", None), ("Istria \"Ltd\"", "istria.test")]:
        data = await admin.ok('mutation($n: String!, $d: String) { createCompany(input: '
                              '{name: $n, domain: $d}) { company { id } } }', n=name, d=domain)
        companies.append(data["createCompany"]["company"]["id"])
    contacts = []
    for name, email, phone, company in [("Ann", "ann@x.test", None, companies[0]),
                                        ("Bo", None, "+1 555", None),
                                        ("Čeněk", "c@x.test", "+44 20", companies[1]),
                                        ("ANN", "ANN@x.test", None, companies[2]),
                                        ("İlkay ǅemal", None, None, companies[3]),
                                        ("Istria", "i@x.test", "_1%", None),
                                        ("Ivan \\ tab\tend", None, None, companies[0]),
                                        ("\"quoted\" 100%_", "q@x.test", None, None)]:
        data = await admin.ok(
            'mutation($n: String!, $e: String, $p: String, $c: ID) { createContact(input: '
            '{name: $n, email: $e, phone: $p, companyId: $c}) { contact { id } } }',
            n=name, e=email, p=phone, c=company)
        contacts.append(data["createContact"]["contact"]["id"])
    owners = [None, t.admin.user_id, manager.user_id, rep.user_id, other.user_id]
    names = list(stages)
    world = World(tenant=t, pipelines=[pipeline["id"]], stages=stages,
                  users=[t.admin, manager, rep, other], team_id=gid("Team", str(team)),
                  contacts=contacts, companies=companies)
    for i in range(deals):
        fields: dict[str, Any] = {
            "amount": ["0", "1500.00", "99.99", "1500"][i % 4],
            "temperature": ["HOT", "WARM", "COLD"][i % 3],
            "labels": [[], ["vip"], ["vip", "q3 ✓"]][i % 3],
        }
        owner = owners[i % len(owners)]
        fields["ownerId"] = gid("User", str(owner)) if owner else None
        if i % 4:
            fields["contactId"] = contacts[i % 3]
        if i % 5 == 1:
            fields["companyId"] = companies[i % 2]
        if i % 3 == 0:
            fields["expectedCloseDate"] = f"2026-0{1 + i % 9}-1{i % 10}"
        if i % 4 == 2:
            fields["probabilityOverride"] = ["0.5", "0", "1"][i % 3]
        deal = await create_deal(admin, pipeline["id"], f"Deal {i} «{t.slug[-4:]}»", **fields)
        world.deals.append(deal["id"])
        target = names[i % len(names)]
        if target != names[0]:
            reason = "price" if target == "Lost" else None
            await move(admin, deal["id"], stages[target], 1, reason)
    # What the API cannot write but the database holds: odd JSON, ties in the sort keys,
    # timestamps with and without a fraction.
    for i, deal_id in enumerate(world.deals):
        raw = decode_id(deal_id, "Deal", field="id")
        await owner_conn.execute(
            "UPDATE deals SET custom_fields = $2::jsonb, updated_at = CASE WHEN $3 % 3 = 0 "
            "THEN date_trunc('second', updated_at) WHEN $3 % 3 = 1 THEN "
            "'2026-01-01 10:00:00.5+00' ELSE updated_at END WHERE id = $1",
            raw, _json(CUSTOM_VALUES[i % len(CUSTOM_VALUES)]), i)
    second = await admin.ok(CREATE_SEGMENT, name="Second", stages=[
        {"name": "One", "kind": "OPEN"}, {"name": "Two", "kind": "OPEN"},
        {"name": "Won", "kind": "WON", "probability": "1"},
        {"name": "Lost", "kind": "LOST", "probability": "0"}])
    second_pipeline = second["createSegment"]["segment"]["pipeline"]
    world.pipelines.append(second_pipeline["id"])
    await create_deal(admin, second_pipeline["id"], "lonely deal")
    # An archived stage (visible with includeArchived) and an inactive user.
    await admin.ok('mutation($id: ID!) { archiveStage(input: {stageId: $id}) '
                   '{ errors { code } } }', id=second_pipeline["stages"][1]["id"])
    await owner_conn.execute("UPDATE users SET is_active = false WHERE id = $1", other.user_id)
    # An unsubscribed contact and rows edited since they were made (version > 1).
    await owner_conn.execute(
        "UPDATE contacts SET unsubscribed_at = now(), version = 3 WHERE id = $1",
        decode_id(contacts[1], "Contact", field="id"))
    await owner_conn.execute("UPDATE companies SET version = 2 WHERE id = $1",
                             decode_id(companies[0], "Company", field="id"))
    world.callers = {
        "admin": admin,
        "rep": t.as_user(rep),
        "reader": t.key_caller(await t.api_key("deals:read")),
        "contacts_only": t.key_caller(await t.api_key("contacts:read")),
    }
    return world


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def fresh_id(type_name: str) -> str:
    return gid(type_name, str(uuid.uuid4()))
