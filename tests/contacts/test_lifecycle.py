"""Contacts and companies: update, delete (their deals stay, unlinked), merge; every failure
typed and writing nothing; another tenant's ids are "not found"."""

from __future__ import annotations

from typing import Any

import asyncpg
from strawberry.relay import GlobalID

from tests.deals.ops import create_deal, default_pipeline
from tests.factories import TenantFactory, all_tables_snapshot

CONTACT = """mutation($input: CreateContactInput!) { createContact(input: $input) {
  contact { id version } errors { code } } }"""
COMPANY = """mutation($input: CreateCompanyInput!) { createCompany(input: $input) {
  company { id version } errors { code } } }"""
UPDATE = """mutation($input: UpdateContactInput!) { updateContact(input: $input) {
  contact { id name email phone version company { id } }
  errors { code field message ... on VersionConflictError { currentVersion } } } }"""
DELETE = """mutation($input: DeleteContactInput!) { deleteContact(input: $input) {
  deletedContactId errors { code field message } } }"""
MERGE = """mutation($input: MergeContactsInput!) { mergeContacts(input: $input) {
  contact { id version } errors { code field message } } }"""
UPDATE_COMPANY = """mutation($input: UpdateCompanyInput!) { updateCompany(input: $input) {
  company { id name domain version } errors { code field message } } }"""
DELETE_COMPANY = """mutation($input: DeleteCompanyInput!) { deleteCompany(input: $input) {
  deletedCompanyId errors { code field message } } }"""
MERGE_COMPANIES = """mutation($input: MergeCompaniesInput!) { mergeCompanies(input: $input) {
  company { id name domain version } errors { code field message } } }"""
DEAL = """query($id: ID!) { node(id: $id) { ... on Deal { version contact { id }
  company { id } history { kind changes { field from to } } } } }"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Contact { company { id } } } }"


def _gid(type_name: str, n: int) -> str:
    return str(GlobalID(type_name, f"00000000-0000-0000-0000-{n:012d}"))


async def _contact(caller: Any, **input: Any) -> str:
    data = await caller.ok(CONTACT, input=input)
    return data["createContact"]["contact"]["id"]  # type: ignore[no-any-return]


async def _company(caller: Any, **input: Any) -> str:
    data = await caller.ok(COMPANY, input=input)
    return data["createCompany"]["company"]["id"]  # type: ignore[no-any-return]


async def test_update_fixes_a_typo_and_clears_fields(tenants: TenantFactory) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    acme = await _company(admin, name="Acme")
    ann = await _contact(admin, name="Ann", email="ann@exmaple.test", phone="+1 555 0100")
    result = (await admin.ok(UPDATE, input={"contactId": ann, "expectedVersion": 1,
                                            "email": "Ann@Example.test", "companyId": acme}))
    assert result["updateContact"] == {"contact": {
        "id": ann, "name": "Ann", "email": "Ann@Example.test", "phone": "+1 555 0100",
        "version": 2, "company": {"id": acme}}, "errors": []}
    cleared = (await admin.ok(UPDATE, input={"contactId": ann, "expectedVersion": 2,
                                             "phone": None, "companyId": None}))
    assert cleared["updateContact"]["contact"]["phone"] is None
    assert cleared["updateContact"]["contact"]["company"] is None
    same = (await admin.ok(UPDATE, input={"contactId": ann, "expectedVersion": 3,
                                          "name": "Ann"}))
    assert same["updateContact"]["contact"]["version"] == 3  # nothing changed, no new version
    company = (await admin.ok(UPDATE_COMPANY, input={"companyId": acme, "expectedVersion": 1,
                                                     "name": "Acme Ltd", "domain": "ACME.test"}))
    assert company["updateCompany"]["company"] == {"id": acme, "name": "Acme Ltd",
                                                   "domain": "acme.test", "version": 2}


async def test_failures_are_typed_and_write_nothing(
        tenants: TenantFactory, owner_conn: asyncpg.Connection) -> None:
    a, b = await tenants.create(), await tenants.create()
    admin = a.admin_caller
    ann = await _contact(admin, name="Ann")
    bob = await _contact(admin, name="Bob")
    acme = await _company(admin, name="Acme")
    b_contact = await _contact(b.admin_caller, name="B's")
    b_company = await _company(b.admin_caller, name="B's Co")
    cases: list[tuple[str, Any, str, dict[str, Any], str, str | None]] = [
        ("update: unknown", admin, UPDATE, {"contactId": _gid("Contact", 1), "expectedVersion": 1,
                                            "name": "x"}, "NOT_FOUND", "contactId"),
        ("update: other tenant's", admin, UPDATE, {"contactId": b_contact, "expectedVersion": 1,
                                                   "name": "x"}, "NOT_FOUND", "contactId"),
        ("update: a company's id", admin, UPDATE, {"contactId": acme, "expectedVersion": 1},
         "NOT_FOUND", "contactId"),
        ("update: stale version", admin, UPDATE, {"contactId": ann, "expectedVersion": 4,
                                                  "name": "x"}, "VERSION_CONFLICT",
         "expectedVersion"),
        ("update: bad email", admin, UPDATE, {"contactId": ann, "expectedVersion": 1,
                                              "email": "not-an-email"}, "VALIDATION_FAILED",
         "email"),
        ("update: bad phone", admin, UPDATE, {"contactId": ann, "expectedVersion": 1,
                                              "phone": "call me"}, "VALIDATION_FAILED", "phone"),
        ("update: blank name", admin, UPDATE, {"contactId": ann, "expectedVersion": 1,
                                               "name": "  "}, "VALIDATION_FAILED", "name"),
        ("update: other tenant's company", admin, UPDATE,
         {"contactId": ann, "expectedVersion": 1, "companyId": b_company}, "NOT_FOUND",
         "companyId"),
        ("delete: unknown", admin, DELETE, {"contactId": _gid("Contact", 2)}, "NOT_FOUND",
         "contactId"),
        ("delete: other tenant's", admin, DELETE, {"contactId": b_contact}, "NOT_FOUND",
         "contactId"),
        ("delete: stale version", admin, DELETE, {"contactId": ann, "expectedVersion": 2},
         "VERSION_CONFLICT", "expectedVersion"),
        ("merge: into itself", admin, MERGE, {"survivorId": ann, "duplicateId": ann},
         "VALIDATION_FAILED", "duplicateId"),
        ("merge: unknown survivor", admin, MERGE, {"survivorId": _gid("Contact", 3),
                                                   "duplicateId": ann}, "NOT_FOUND",
         "survivorId"),
        ("merge: other tenant's duplicate", admin, MERGE,
         {"survivorId": ann, "duplicateId": b_contact}, "NOT_FOUND", "duplicateId"),
        ("merge: stale duplicate version", admin, MERGE,
         {"survivorId": ann, "duplicateId": bob, "duplicateVersion": 3}, "VERSION_CONFLICT",
         "duplicateVersion"),
        ("company update: other tenant's", admin, UPDATE_COMPANY,
         {"companyId": b_company, "expectedVersion": 1, "name": "x"}, "NOT_FOUND",
         "companyId"),
        ("company update: blank name", admin, UPDATE_COMPANY,
         {"companyId": acme, "expectedVersion": 1, "name": ""}, "VALIDATION_FAILED", "name"),
        ("company update: stale", admin, UPDATE_COMPANY,
         {"companyId": acme, "expectedVersion": 9, "name": "x"}, "VERSION_CONFLICT",
         "expectedVersion"),
        ("company delete: other tenant's", admin, DELETE_COMPANY, {"companyId": b_company},
         "NOT_FOUND", "companyId"),
        ("company merge: into itself", admin, MERGE_COMPANIES,
         {"survivorId": acme, "duplicateId": acme}, "VALIDATION_FAILED", "duplicateId"),
        ("company merge: other tenant's", admin, MERGE_COMPANIES,
         {"survivorId": acme, "duplicateId": b_company}, "NOT_FOUND", "duplicateId"),
    ]
    before = (await all_tables_snapshot(owner_conn, a.id),
              await all_tables_snapshot(owner_conn, b.id))
    for name, caller, mutation, variables, code, field in cases:
        body = await caller.gql(mutation, input=variables)
        assert "errors" not in body, (name, body)
        (result,) = body["data"].values()
        assert len(result["errors"]) == 1, (name, result)
        error = result["errors"][0]
        assert error["code"] == code, (name, error)
        if field is not None:
            assert error["field"] == field, (name, error)
        assert error["message"], name
        after = (await all_tables_snapshot(owner_conn, a.id),
                 await all_tables_snapshot(owner_conn, b.id))
        assert after == before, f"{name} changed the database"


async def test_deleting_a_contact_or_company_keeps_their_deals_unlinked(
        tenants: TenantFactory, owner_conn: asyncpg.Connection) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    acme = await _company(admin, name="Acme")
    ann = await _contact(admin, name="Ann", companyId=acme)
    deal = await create_deal(admin, pipeline["id"], "Deal", contactId=ann, companyId=acme)
    gone = (await admin.ok(DELETE, input={"contactId": ann, "expectedVersion": 1}))
    assert gone["deleteContact"] == {"deletedContactId": ann, "errors": []}
    assert (await admin.ok(NODE, id=ann))["node"] is None
    node = (await admin.ok(DEAL, id=deal["id"]))["node"]
    assert (node["version"], node["contact"], node["company"]) == (2, None, {"id": acme})
    assert node["history"][-1]["changes"] == [{"field": "contactId", "from": ann, "to": None}]
    bob = await _contact(admin, name="Bob", companyId=acme)
    gone = (await admin.ok(DELETE_COMPANY, input={"companyId": acme}))
    assert gone["deleteCompany"] == {"deletedCompanyId": acme, "errors": []}
    node = (await admin.ok(DEAL, id=deal["id"]))["node"]
    assert (node["version"], node["company"]) == (3, None)
    assert (await admin.ok(NODE, id=bob))["node"] == {"id": bob, "company": None}
    audit = await owner_conn.fetch("SELECT action FROM audit_events WHERE tenant_id = $1 "
                                   "AND action LIKE 'contact.%'", t.id)
    assert [r["action"] for r in audit] == ["contact.deleted"]
    # Partners' webhooks learn of each change from the entity-event log (ids only on delete).
    entity = await owner_conn.fetch(
        "SELECT kind, data FROM entity_events WHERE tenant_id = $1 AND kind LIKE '%.deleted' "
        "ORDER BY seq", t.id)
    assert [r["kind"] for r in entity] == ["contact.deleted", "company.deleted"]
    assert '"name"' not in entity[0]["data"]


async def test_merging_companies_moves_contacts_and_deals(tenants: TenantFactory) -> None:
    t = await tenants.create()
    admin = t.admin_caller
    pipeline = await default_pipeline(admin)
    acme = await _company(admin, name="Acme")
    dup = await _company(admin, name="ACME Inc.", domain="acme.test")
    ann = await _contact(admin, name="Ann", companyId=dup)
    deal = await create_deal(admin, pipeline["id"], "Deal", companyId=dup)
    merged = (await admin.ok(MERGE_COMPANIES, input={"survivorId": acme, "duplicateId": dup,
                                                     "survivorVersion": 1}))
    assert merged["mergeCompanies"] == {"company": {
        "id": acme, "name": "Acme", "domain": "acme.test", "version": 2}, "errors": []}
    assert (await admin.ok(NODE, id=dup))["node"] is None
    assert (await admin.ok(NODE, id=ann))["node"]["company"] == {"id": acme}
    node = (await admin.ok(DEAL, id=deal["id"]))["node"]
    assert node["company"] == {"id": acme}
    assert node["history"][-1]["changes"] == [{"field": "companyId", "from": dup, "to": acme}]


LIST = """query($first: Int!, $after: String, $search: String) {
  contactsConnection(first: $first, after: $after, search: $search) {
    totalCount edges { cursor node { name } } pageInfo { hasNextPage endCursor } } }"""
DEALS_OF = """query($ids: [ID!]) { deals(filter: {contactIds: $ids}) { edges { node { title } } } }"""


async def test_contact_lists_page_by_name_with_a_filter(tenants: TenantFactory) -> None:
    t, other = await tenants.create(), await tenants.create()
    admin = t.admin_caller
    names = ["bea", "Adam", "Cleo", "adele", "Dora"]
    ids = {n: await _contact(admin, name=n, email=f"{n.lower()}@x.test") for n in names}
    await _contact(other.admin_caller, name="Aaron")
    seen, after = [], None
    while True:
        page = (await admin.ok(LIST, first=2, after=after))["contactsConnection"]
        assert page["totalCount"] == 5
        seen += [e["node"]["name"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ["Adam", "adele", "bea", "Cleo", "Dora"]
    # A cursor stays valid when rows before it change.
    first = (await admin.ok(LIST, first=2))["contactsConnection"]
    await admin.ok(DELETE, input={"contactId": ids["Adam"]})
    rest = (await admin.ok(LIST, first=10, after=first["pageInfo"]["endCursor"]))
    assert [e["node"]["name"] for e in rest["contactsConnection"]["edges"]] == [
        "bea", "Cleo", "Dora"]
    found = (await admin.ok(LIST, first=10, search="AD"))["contactsConnection"]
    assert [e["node"]["name"] for e in found["edges"]] == ["adele"]
    bad = await admin.gql(LIST, first=10, after="garbage")
    assert [e["extensions"]["code"] for e in bad["errors"]] == ["VALIDATION_FAILED"]
    big = await admin.gql(LIST, first=1000)
    assert [e["extensions"]["code"] for e in big["errors"]] == ["LIMIT_EXCEEDED"]
    pipeline = await default_pipeline(admin)
    await create_deal(admin, pipeline["id"], "Cleo's", contactId=ids["Cleo"])
    await create_deal(admin, pipeline["id"], "Nobody's")
    listed = (await admin.ok(DEALS_OF, ids=[ids["Cleo"]]))["deals"]["edges"]
    assert [e["node"]["title"] for e in listed] == ["Cleo's"]


async def test_paging_one_by_one_sees_every_name_once_in_postgresql_order(
        tenants: TenantFactory, owner_conn: asyncpg.Connection) -> None:
    # Python's str.lower and PostgreSQL's lower() disagree on some letters (Python lowers
    # 'İ' to 'i' + U+0307); a cursor built from Python's key skipped "Istria".
    t = await tenants.create()
    admin = t.admin_caller
    names = ["İstanbul ẞtraße", "Istria", "istanbul", "Ivan", "ǅemal", "\"quoted\" \\ tab\tend",
             "Ann", "ANN"]
    for n in names:
        await _contact(admin, name=n)
    seen, after = [], None
    for _ in range(len(names) + 1):
        page = (await admin.ok(LIST, first=1, after=after))["contactsConnection"]
        seen += [e["node"]["name"] for e in page["edges"]]
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
    expected = [r["name"] for r in await owner_conn.fetch(
        "SELECT name FROM contacts WHERE tenant_id = $1 ORDER BY lower(name), id", t.id)]
    assert seen == expected and sorted(seen) == sorted(names)
