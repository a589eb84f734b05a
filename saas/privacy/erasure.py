"""Erase a person: their contact row and every trace of their name, e-mail and phone.

What `erase_contact` does, in one transaction:
1. The contact's deals stay, without a contact (each with an `updated` event naming only
   ids), so funnel, conversion and forecasts are unchanged; enrollments that mail the person
   stop (`contact_deleted`) and lose their contact link; the contact row goes (with it its
   unsubscribe record and any merge record pointing at it).
2. Campaign messages sent to the person's address are redacted: recipient, subject, body
   become "[erased]", the unsubscribe link and any error text are removed.
3. Every other text, jsonb, text[] and bytea column of the tenant's customer-data tables
   (deals' titles, custom fields and lost reasons, stage-event data, activity subjects and
   notes, companies, forecasts, entity events and webhook payloads, imported and exported
   files, stored responses of idempotent requests, and tables later migrations add) has the
   full name, the e-mail and the phone replaced by "[erased]" (bytes: their UTF-8 and
   JSON-escaped forms): free-text notes that name the person are kept but
   no longer identify them. Configuration and account tables (users, teams, keys, sessions,
   segments, stages, campaign templates, targets) are not customer data and are left alone;
   the append-only audit trail never held the person's data (entries name ids only).
4. The audit trail records `personal_data.erased` with the contact's id and counts, and the
   entity-event log a `contact.deleted` (id only, `erased: true`) for partners' webhooks;
   the person's earlier entity events and webhook payloads are swept like everything else.

The name is matched as a whole word, case-insensitively; the e-mail and phone as written.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text

from saas import entity_events
from saas.contacts.lifecycle import remove_contact
from saas.contacts.models import Contact
from saas.db import UnitOfWork
from saas.errors import NotFound
from tenants import audit
from tenants.audit import Action
from tenants.principal import Principal
from tenants.scopes import Scope

ERASED = "[erased]"
MIN_TERM = 3  # shorter terms would match too much to be the person's

# Not customer data (accounts, configuration, the append-only audit trail, counters).
NOT_SWEPT = frozenset({
    "tenants", "teams", "users", "api_keys", "auth_sessions", "refresh_tokens", "user_tokens",
    "audit_events", "tenant_counters", "board_versions", "segments", "pipelines", "stages",
    "custom_field_defs", "campaigns", "campaign_steps", "campaign_cursors", "targets",
    "contacts",  # the person's row is deleted, other contacts are other people
})

_COLUMNS = text("""
    SELECT c.table_name, c.column_name, c.data_type, c.udt_name
    FROM information_schema.columns c
    WHERE c.table_schema = 'public'
      AND (c.data_type IN ('text', 'character varying', 'jsonb', 'json')
           OR (c.data_type = 'ARRAY' AND c.udt_name IN ('_text', '_varchar')))
      AND EXISTS (SELECT 1 FROM information_schema.columns t
                  WHERE t.table_schema = 'public' AND t.table_name = c.table_name
                    AND t.column_name = 'tenant_id')
    ORDER BY c.table_name, c.ordinal_position""")

_REDACT_SENDS = text(
    "UPDATE campaign_sends SET recipient = :x, subject = :x, body = :x, unsubscribe_url = NULL, "
    "error = NULL WHERE lower(recipient) = lower(:email)")


@dataclass(frozen=True)
class Erasure:
    contact_id: uuid.UUID
    deals_unlinked: int
    sends_redacted: int
    values_redacted: int


def _word(term: str) -> str:
    """A PostgreSQL regular expression matching `term` literally, as a whole word where it
    starts or ends with a word character."""
    body = re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", term)
    start = r"\m" if term[:1].isalnum() else ""
    end = r"\M" if term[-1:].isalnum() else ""
    return start + body + end


def _literal(term: str) -> str:
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", term)


def patterns(name: str | None, email: str | None, phone: str | None) -> tuple[str, str] | None:
    """(plain-text pattern, JSON-text pattern) matching any of the person's terms."""
    plain, in_json = [], []
    for term, as_word in ((name, True), (email, False), (phone, False)):
        term = (term or "").strip()
        if len(term) < MIN_TERM:
            continue
        encoded = json.dumps(term, ensure_ascii=False)[1:-1]
        plain.append(_word(term) if as_word else _literal(term))
        in_json.append(_word(encoded) if as_word else _literal(encoded))
    if not plain:
        return None
    return "(" + "|".join(plain) + ")", "(" + "|".join(in_json) + ")"


async def _sweep(uow: UnitOfWork, plain: str, in_json: str) -> int:
    """Replace the person's terms in every swept column; returns the number of values."""
    changed = 0
    for table, column, data_type, _udt in (await uow.session.execute(_COLUMNS)).all():
        if table in NOT_SWEPT:
            continue
        col = f'"{column}"'
        if data_type in ("jsonb", "json"):
            setter = f"regexp_replace({col}::text, :j, :x, 'gi')::{data_type}"
            where = f"{col}::text ~* :j"
        elif data_type == "ARRAY":
            setter = (f"ARRAY(SELECT regexp_replace(v, :p, :x, 'gi') FROM unnest({col}) "
                      f"WITH ORDINALITY u(v, n) ORDER BY n)")
            where = f"array_to_string({col}, chr(31)) ~* :p"
        else:
            setter = f"regexp_replace({col}, :p, :x, 'gi')"
            where = f"{col} ~* :p"
        result = await uow.session.execute(
            text(f'UPDATE "{table}" SET {col} = {setter} WHERE {where}'),
            {"p": plain, "j": in_json, "x": ERASED})
        changed += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return changed


_BYTEA = text("""
    SELECT c.table_name, c.column_name FROM information_schema.columns c
    WHERE c.table_schema = 'public' AND c.data_type = 'bytea'
      AND EXISTS (SELECT 1 FROM information_schema.columns t
                  WHERE t.table_schema = 'public' AND t.table_name = c.table_name
                    AND t.column_name = 'tenant_id')
    ORDER BY c.table_name, c.ordinal_position""")


def byte_patterns(name: str | None, email: str | None,
                  phone: str | None) -> tuple[list[bytes], re.Pattern[bytes]] | None:
    """(the terms' UTF-8 and JSON-escaped bytes to look for, one regex replacing them):
    stored files and cached responses (CSV, JSON) hold the person as text in bytes."""
    needles: list[bytes] = []
    parts: list[bytes] = []
    for term, as_word in ((name, True), (email, False), (phone, False)):
        term = (term or "").strip()
        if len(term) < MIN_TERM:
            continue
        for form in {term, json.dumps(term)[1:-1], json.dumps(term, ensure_ascii=False)[1:-1]}:
            raw = form.encode()
            needles += [raw, raw.lower()]
            body = re.escape(raw)
            parts.append(rb"(?<![\w])" + body + rb"(?![\w])" if as_word else body)
    if not parts:
        return None
    return sorted(set(needles)), re.compile(b"|".join(parts), re.IGNORECASE)


async def _sweep_bytes(uow: UnitOfWork, needles: list[bytes],
                       pattern: re.Pattern[bytes]) -> int:
    """The same replacement in bytea columns (imported and exported files, stored
    responses of idempotent requests), row by row."""
    changed = 0
    for table, column in (await uow.session.execute(_BYTEA)).all():
        if table in NOT_SWEPT:
            continue
        col = f'"{column}"'
        where = " OR ".join(f"position(CAST(:n{i} AS bytea) IN {col}) > 0"
                            for i in range(len(needles)))
        params = {f"n{i}": n for i, n in enumerate(needles)}
        rows = (await uow.session.execute(
            text(f'SELECT ctid::text AS row, {col} AS value FROM "{table}" WHERE {where}'),
            params)).all()
        for row in rows:
            value = pattern.sub(ERASED.encode(), bytes(row.value))
            await uow.session.execute(
                text(f'UPDATE "{table}" SET {col} = :v '
                     "WHERE ctid = CAST(CAST(:row AS text) AS tid)"),
                {"v": value, "row": row.row})
            changed += 1
    return changed


async def erase_contact(*, uow: UnitOfWork, principal: Principal,
                        contact_id: uuid.UUID) -> Erasure:
    """Remove the person's personal data everywhere (see the module docstring)."""
    principal.require(Scope.PRIVACY_ADMIN)
    contact = (await uow.session.execute(
        select(Contact).where(Contact.id == contact_id).with_for_update())).scalar_one_or_none()
    if contact is None:
        raise NotFound("contact not found", field="contactId")
    name, email, phone = contact.name, contact.email, contact.phone
    unlinked = await remove_contact(uow, principal, contact, now=datetime.now(UTC))
    await entity_events.append(uow, kind="contact.deleted", entity_type="Contact",
                               entity_id=contact_id, principal=principal,
                               data={"contact": {"id": entity_events.gid("Contact", contact_id)},
                                     "erased": True})
    sends = 0
    if email:
        sends = int((await uow.session.execute(
            _REDACT_SENDS, {"x": ERASED, "email": email})).rowcount or 0)  # type: ignore[attr-defined]
    found = patterns(name, email, phone)
    values = await _sweep(uow, *found) if found else 0
    in_bytes = byte_patterns(name, email, phone)
    if in_bytes:
        values += await _sweep_bytes(uow, *in_bytes)
    await audit.record(uow, principal, Action.DATA_ERASED, target=("Contact", contact_id),
                       details={"deals_unlinked": unlinked, "sends_redacted": sends,
                                "values_redacted": values})
    return Erasure(contact_id, unlinked, sends, values)
