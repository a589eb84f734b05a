"""The import job: valid rows written in batches, each batch one transaction with the cursor.

A batch inserts its companies, contacts, deals and the deals' `created` stage events with a
few array-valued INSERTs (no per-row round trips), and advances `imports.rows_done` in the
same transaction, under the import row's lock. A job killed anywhere resumes after the last
committed batch; every created object also carries (import_id, import_row), unique per
tenant, so even two runs at once could not create a row's object twice. Existing companies
are matched by domain (else name), contacts by e-mail, instead of being duplicated.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import text

from saas import entity_events
from saas.db import Database, UnitOfWork
from saas.imports import parsing
from saas.imports.service import MAX_PROBLEMS, lookups
from saas.imports.validation import Clean, check

_COMPANIES = text(
    "INSERT INTO companies (tenant_id, id, name, domain, import_id, import_row) "
    "SELECT :t, unnest(CAST(:ids AS uuid[])), unnest(CAST(:names AS text[])), "
    "unnest(CAST(:domains AS text[])), :imp, unnest(CAST(:rows AS int[])) "
    "ON CONFLICT (tenant_id, import_id, import_row) WHERE import_id IS NOT NULL DO NOTHING")
_CONTACTS = text(
    "INSERT INTO contacts (tenant_id, id, name, email, phone, company_id, import_id, import_row) "
    "SELECT :t, unnest(CAST(:ids AS uuid[])), unnest(CAST(:names AS text[])), "
    "unnest(CAST(:emails AS text[])), unnest(CAST(:phones AS text[])), "
    "unnest(CAST(:companies AS uuid[])), :imp, unnest(CAST(:rows AS int[])) "
    "ON CONFLICT (tenant_id, import_id, import_row) WHERE import_id IS NOT NULL DO NOTHING")
_DEALS = text(
    "INSERT INTO deals (tenant_id, id, pipeline_id, stage_id, owner_id, contact_id, company_id, "
    "title, amount, currency, expected_close_date, temperature, labels, probability_override, "
    "lost_reason, import_id, import_row) "
    "SELECT :t, d.id, d.pipeline, d.stage, d.owner, d.contact, d.company, d.title, d.amount, "
    "d.currency, d.close, d.temperature, "
    "ARRAY(SELECT jsonb_array_elements_text(CAST(d.labels AS jsonb))), "
    "d.probability, d.reason, :imp, d.row FROM unnest(CAST(:ids AS uuid[]), "
    "CAST(:pipelines AS uuid[]), CAST(:stages AS uuid[]), CAST(:owners AS uuid[]), "
    "CAST(:contacts AS uuid[]), CAST(:companies AS uuid[]), CAST(:titles AS text[]), "
    "CAST(:amounts AS numeric[]), CAST(:currencies AS text[]), CAST(:closes AS date[]), "
    "CAST(:temperatures AS text[]), CAST(:labels AS text[]), CAST(:probabilities AS numeric[]), "
    "CAST(:reasons AS text[]), CAST(:rows AS int[])) AS d(id, pipeline, stage, owner, contact, "
    "company, title, amount, currency, close, temperature, labels, probability, reason, row) "
    "ON CONFLICT (tenant_id, import_id, import_row) WHERE import_id IS NOT NULL DO NOTHING "
    "RETURNING id, pipeline_id, stage_id, amount, currency, lost_reason, import_row")
_RESERVE = text(
    "INSERT INTO tenant_counters (tenant_id, event_seq) VALUES (:t, :n) "
    "ON CONFLICT (tenant_id) DO UPDATE SET event_seq = tenant_counters.event_seq + :n "
    "RETURNING event_seq")
_EVENTS = text(
    "INSERT INTO stage_events (tenant_id, seq, deal_id, pipeline_id, kind, to_stage_id, "
    "actor_user_id, actor_api_key_id, amount, currency, lost_reason, data) "
    "SELECT :t, e.seq, e.deal, e.pipeline, 'created', e.stage, :user, :key, e.amount, "
    "e.currency, e.reason, jsonb_build_object('import', CAST(:imp_gid AS text), 'row', e.row) "
    "FROM unnest(CAST(:seqs AS bigint[]), CAST(:deals AS uuid[]), CAST(:pipelines AS uuid[]), "
    "CAST(:stages AS uuid[]), CAST(:amounts AS numeric[]), CAST(:currencies AS text[]), "
    "CAST(:reasons AS text[]), CAST(:rows AS int[])) "
    "AS e(seq, deal, pipeline, stage, amount, currency, reason, row)")


@dataclass
class Matches:
    """Existing companies (by domain and by name) and contacts (by e-mail)."""

    companies: dict[tuple[str, str], uuid.UUID] = field(default_factory=dict)
    contacts: dict[str, uuid.UUID] = field(default_factory=dict)

    async def load(self, uow: UnitOfWork) -> None:
        for r in await uow.session.execute(text(
                "SELECT id, lower(name) AS name, lower(domain) AS domain FROM companies "
                "ORDER BY created_at, id")):
            if r.domain:
                self.companies.setdefault(("d", r.domain), r.id)
            self.companies.setdefault(("n", r.name), r.id)
        for r in await uow.session.execute(text(
                "SELECT id, lower(email) AS email FROM contacts WHERE email IS NOT NULL "
                "ORDER BY created_at, id")):
            self.contacts.setdefault(r.email, r.id)


async def _write(uow: UnitOfWork, rows: list[Clean], matches: Matches, *, import_id: uuid.UUID,
                 owner: uuid.UUID | None, key: uuid.UUID | None) -> tuple[int, Matches]:
    """Insert one batch; returns (objects created, the matches it added)."""
    added = Matches()
    companies: dict[str, list[Any]] = {"ids": [], "names": [], "domains": [], "rows": []}
    contacts: dict[str, list[Any]] = {k: [] for k in ("ids", "names", "emails", "phones",
                                                       "companies", "rows")}
    deals: dict[str, list[Any]] = {k: [] for k in (
        "ids", "pipelines", "stages", "owners", "contacts", "companies", "titles", "amounts",
        "currencies", "closes", "temperatures", "labels", "probabilities", "reasons", "rows")}

    def company_of(row: Clean) -> uuid.UUID | None:
        if row.company is None:
            return None
        name, domain = row.company
        keys = ([("d", domain)] if domain else []) + [("n", name.lower())]
        for k in keys:
            found = added.companies.get(k) or matches.companies.get(k)
            if found is not None and (k[0] == "d" or not domain):
                return found
        new = uuid.uuid4()
        for k in keys:
            added.companies.setdefault(k, new)
        for name_, value in (("ids", new), ("names", name), ("domains", domain),
                             ("rows", row.line)):
            companies[name_].append(value)
        return new

    def contact_of(row: Clean, company: uuid.UUID | None) -> uuid.UUID | None:
        if row.contact is None:
            return None
        name, email, phone = row.contact
        if email and (found := added.contacts.get(email) or matches.contacts.get(email)):
            return found
        new = uuid.uuid4()
        if email:
            added.contacts[email] = new
        for name_, value in (("ids", new), ("names", name), ("emails", email),
                             ("phones", phone), ("companies", company), ("rows", row.line)):
            contacts[name_].append(value)
        return new

    for row in rows:
        company = company_of(row)
        contact = contact_of(row, company)
        if row.deal is None:
            continue
        d = row.deal
        for name_, value in (
                ("ids", uuid.uuid4()), ("pipelines", d["pipeline_id"]),
                ("stages", d["stage_id"]), ("owners", d["owner_id"] or owner),
                ("contacts", contact), ("companies", company), ("titles", d["title"]),
                ("amounts", d["amount"]), ("currencies", d["currency"]),
                ("closes", d["expected_close_date"]), ("temperatures", d["temperature"]),
                ("labels", orjson.dumps(d["labels"]).decode()),
                ("probabilities", d["probability_override"]), ("reasons", d["lost_reason"]),
                ("rows", row.line)):
            deals[name_].append(value)
    params = {"t": uow.tenant_id, "imp": import_id}
    created = 0
    if companies["ids"]:
        await uow.session.execute(_COMPANIES, {**params, **companies})
        created += len(companies["ids"])
    if contacts["ids"]:
        await uow.session.execute(_CONTACTS, {**params, **contacts})
        created += len(contacts["ids"])
    if deals["ids"]:
        inserted = (await uow.session.execute(_DEALS, {**params, **deals})).all()
        created += len(inserted)
        if inserted:
            last = int((await uow.session.execute(
                _RESERVE, {"t": uow.tenant_id, "n": len(inserted)})).scalar_one())
            first = last - len(inserted) + 1
            await uow.session.execute(_EVENTS, {
                "t": uow.tenant_id, "user": owner, "key": key,
                "imp_gid": entity_events.gid("Import", import_id),
                "seqs": list(range(first, last + 1)), "deals": [r.id for r in inserted],
                "pipelines": [r.pipeline_id for r in inserted],
                "stages": [r.stage_id for r in inserted],
                "amounts": [r.amount for r in inserted],
                "currencies": [r.currency for r in inserted],
                "reasons": [r.lost_reason for r in inserted],
                "rows": [r.import_row for r in inserted]})
    return created, added


async def run(db: Database, tenant_id: uuid.UUID, import_id: uuid.UUID, *,
              batch_rows: int) -> str:
    """Run (or resume) an import; safe to call again: a finished import is left as it is."""
    async with db.unit_of_work(tenant_id) as uow:
        row = (await uow.session.execute(text(
            "UPDATE imports SET status = 'running', started_at = coalesce(started_at, now()) "
            "WHERE id = :id AND status IN ('queued', 'running') "
            "RETURNING kind, format, file, mapping, rows_done, created_by, created_by_api_key"),
            {"id": import_id})).one_or_none()
        if row is None:
            status = (await uow.session.execute(text(
                "SELECT status FROM imports WHERE id = :id"), {"id": import_id})).scalar()
            return str(status or "missing")
        look = await lookups(uow)
        matches = Matches()
        await matches.load(uow)
    parsed = parsing.parse(bytes(row.file), row.format)
    checked = check(row.kind, parsed.records, row.mapping, look)
    valid = {c.line: c for c in checked.rows}
    problems_by_line: dict[int, list[dict[str, Any]]] = {}
    for p in parsed.problems + checked.problems:
        problems_by_line.setdefault(p.line, []).append(p.as_dict())
    # Units of progress: every record, then (as one unit each) the lines that did not parse.
    units = [r.line for r in parsed.records] + sorted({p.line for p in parsed.problems})
    reported = 0
    for start in range(row.rows_done, len(units), batch_rows):
        lines = units[start:start + batch_rows]
        async with db.unit_of_work(tenant_id) as uow:
            done = (await uow.session.execute(text(
                "SELECT rows_done FROM imports WHERE id = :id AND status = 'running' "
                "FOR UPDATE"), {"id": import_id})).scalar()
            if done is None:
                return "stopped"
            if done > start:  # another run got here first
                continue
            created, added = await _write(
                uow, [valid[line] for line in lines if line in valid], matches,
                import_id=import_id, owner=row.created_by, key=row.created_by_api_key)
            errors = [e for line in lines for e in problems_by_line.get(line, [])]
            failed = sum(1 for line in lines if line not in valid)
            keep = errors[:max(MAX_PROBLEMS - reported, 0)]
            await uow.session.execute(text(
                "UPDATE imports SET rows_done = :done, rows_failed = rows_failed + :failed, "
                "rows_created = rows_created + :created, "
                "errors = CASE WHEN jsonb_array_length(errors) < :cap "
                "THEN errors || CAST(:errors AS jsonb) ELSE errors END WHERE id = :id"),
                {"id": import_id, "done": start + len(lines), "failed": failed,
                 "created": created, "errors": orjson.dumps(keep).decode(),
                 "cap": MAX_PROBLEMS})
        reported += len(keep)
        matches.companies.update(added.companies)
        matches.contacts.update(added.contacts)
    async with db.unit_of_work(tenant_id) as uow:
        final = (await uow.session.execute(text(
            "UPDATE imports SET status = 'done', finished_at = now() "
            "WHERE id = :id AND status = 'running' "
            "RETURNING kind, total_rows, rows_done, rows_failed, rows_created"),
            {"id": import_id})).one_or_none()
        if final is not None:
            await entity_events.append(
                uow, kind="import.completed", entity_type="Import", entity_id=import_id,
                data={"import": {"id": entity_events.gid("Import", import_id),
                                 "kind": final.kind, "totalRows": final.total_rows,
                                 "rowsFailed": final.rows_failed,
                                 "objectsCreated": final.rows_created}})
    return "done"
