"""Checking imported rows: every problem of every row, with its line and column.

The same checks run for the dry run and for the job (against the data as it is then), so a
row the dry run accepted is imported unless the tenant changed meanwhile (a stage removed).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from saas.imports.parsing import Problem, Record
from saas.money import ISO_4217, MAX_AMOUNT

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
TEMPERATURES = ("hot", "warm", "cold")
MAX_NAME, MAX_TITLE, MAX_REASON, MAX_LABELS, MAX_LABEL = 200, 300, 500, 20, 50


@dataclass(frozen=True)
class StageRef:
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    kind: str


@dataclass
class Lookups:
    """What rows are checked against, read from the tenant once per run."""

    stages: dict[tuple[str, str], StageRef]  # (segment, stage), lower-cased
    first_open: dict[str, StageRef]  # segment -> its first open stage
    default_segment: str
    users: dict[str, uuid.UUID]  # e-mail (lower) -> active user
    base_currency: str


@dataclass
class Clean:
    """A valid row, typed."""

    line: int
    company: tuple[str, str | None] | None = None  # (name, domain)
    contact: tuple[str, str | None, str | None] | None = None  # (name, email, phone)
    deal: dict[str, Any] | None = None


@dataclass
class Checked:
    rows: list[Clean] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    invalid_lines: set[int] = field(default_factory=set)


def _domain(raw: str) -> str | None:
    value = raw.strip().lower()
    value = re.sub(r"^https?://", "", value).split("/")[0]
    if value.startswith("www."):
        value = value[4:]
    return value if DOMAIN.match(value) else None


class _Row:
    """One record's cells by field, collecting its problems."""

    def __init__(self, record: Record, columns: Mapping[str, str], problems: list[Problem]):
        self.record = record
        self.columns = columns  # field -> the file's header
        self.problems = problems
        self.ok = True

    def get(self, name: str) -> str:
        header = self.columns.get(name)
        return self.record.values.get(header, "").strip() if header else ""

    def bad(self, name: str | None, reason: str) -> None:
        column = self.columns.get(name) if name else None
        self.problems.append(Problem(self.record.line, column or name, reason))
        self.ok = False


def _company(row: _Row, *, required: bool) -> tuple[str, str | None] | None:
    name, raw_domain = row.get("company_name"), row.get("company_domain")
    domain = None
    if raw_domain:
        domain = _domain(raw_domain)
        if domain is None:
            row.bad("company_domain", f"{raw_domain!r} is not a domain name")
    if len(name) > MAX_NAME:
        row.bad("company_name", f"a company name is at most {MAX_NAME} characters")
    if not name and required:
        row.bad("company_name", "a company needs a name")
    if not name:
        if domain:
            return domain, domain
        return None
    return name, domain


def _contact(row: _Row, *, required: bool) -> tuple[str, str | None, str | None] | None:
    name, email, phone = row.get("contact_name"), row.get("contact_email"), row.get(
        "contact_phone")
    if email and (not EMAIL.match(email) or len(email) > 254):
        row.bad("contact_email", f"{email!r} is not an e-mail address")
    if phone and (len(phone) > 40 or not any(ch.isdigit() for ch in phone)):
        row.bad("contact_phone", f"{phone!r} is not a phone number")
    if len(name) > MAX_NAME:
        row.bad("contact_name", f"a contact name is at most {MAX_NAME} characters")
    if not name and required:
        row.bad("contact_name", "a contact needs a name")
    if not name and not email:
        if phone:
            row.bad("contact_name", "a contact with a phone number needs a name or e-mail")
        return None
    return name or email, email.lower() or None, phone or None


def _labels(row: _Row) -> list[str]:
    raw = row.get("labels")
    if not raw:
        return []
    if raw.startswith("["):
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
            row.bad("labels", "labels are a JSON list of strings or separated by ;")
            return []
        items = parsed
    else:
        items = raw.split(";")
    labels = sorted({x.strip() for x in items if x.strip()})
    if len(labels) > MAX_LABELS or any(len(x) > MAX_LABEL for x in labels):
        row.bad("labels", f"at most {MAX_LABELS} labels of up to {MAX_LABEL} characters")
    return labels


def _deal(row: _Row, lookups: Lookups) -> dict[str, Any] | None:
    title = row.get("title")
    if not title:
        row.bad("title", "a deal needs a title")
    elif len(title) > MAX_TITLE:
        row.bad("title", f"a title is at most {MAX_TITLE} characters")
    amount = Decimal(0)
    if raw := row.get("amount"):
        try:
            amount = Decimal(raw)
            if not amount.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            row.bad("amount", f"{raw!r} is not a number")
        else:
            if amount < 0:
                row.bad("amount", "an amount cannot be negative")
            elif amount > MAX_AMOUNT or amount.as_tuple().exponent < -2:  # type: ignore[operator]
                row.bad("amount", "an amount has at most 2 decimals and 16 digits")
    currency = row.get("currency").upper() or lookups.base_currency
    if currency not in ISO_4217:
        row.bad("currency", f"{row.get('currency')!r} is not an ISO 4217 currency code")
    segment = (row.get("segment") or lookups.default_segment).lower()
    stage_name = row.get("stage").lower()
    stage: StageRef | None = None
    if segment not in lookups.first_open and not any(s == segment for s, _ in lookups.stages):
        row.bad("segment", f"no segment named {row.get('segment')!r}")
    elif stage_name:
        stage = lookups.stages.get((segment, stage_name))
        if stage is None:
            row.bad("stage", f"no stage named {row.get('stage')!r} in this segment")
    else:
        stage = lookups.first_open.get(segment)
        if stage is None:
            row.bad("stage", "the segment has no open stage")
    owner = None
    if email := row.get("owner_email").lower():
        if not EMAIL.match(email):
            row.bad("owner_email", f"{email!r} is not an e-mail address")
        elif (owner := lookups.users.get(email)) is None:
            row.bad("owner_email", f"no active user with the e-mail {email!r}")
    close = None
    if raw := row.get("expected_close_date"):
        try:
            close = date.fromisoformat(raw)
        except ValueError:
            row.bad("expected_close_date", f"{raw!r} is not a date (YYYY-MM-DD)")
    temperature = row.get("temperature").lower() or "warm"
    if temperature not in TEMPERATURES:
        row.bad("temperature", "temperature is hot, warm or cold")
    reason = row.get("lost_reason") or None
    if reason and len(reason) > MAX_REASON:
        row.bad("lost_reason", f"a lost reason is at most {MAX_REASON} characters")
    if stage is not None and stage.kind == "lost" and not reason:
        row.bad("lost_reason", "a deal in a lost stage needs a lost reason")
    if stage is not None and stage.kind != "lost" and reason:
        row.bad("lost_reason", "only deals in a lost stage have a lost reason")
    probability = None
    if raw := row.get("probability"):
        try:
            probability = Decimal(raw)
            if not Decimal(0) <= probability <= Decimal(1):
                raise InvalidOperation
        except InvalidOperation:
            row.bad("probability", "probability is a number from 0 to 1")
    labels = _labels(row)
    if not row.ok or stage is None:
        return None
    return {"title": title, "amount": amount, "currency": currency,
            "pipeline_id": stage.pipeline_id, "stage_id": stage.stage_id, "owner_id": owner,
            "expected_close_date": close, "temperature": temperature, "labels": labels,
            "lost_reason": reason, "probability_override": probability}


def check(kind: str, records: list[Record], mapping: Mapping[str, str | None],
          lookups: Lookups) -> Checked:
    """Every record checked; valid ones typed, each problem with its line and column."""
    columns = {f: header for header, f in mapping.items() if f}
    result = Checked()
    for record in records:
        row = _Row(record, columns, result.problems)
        clean = Clean(record.line)
        if kind == "companies":
            clean.company = _company(row, required=True)
        elif kind == "contacts":
            clean.contact = _contact(row, required=True)
            clean.company = _company(row, required=False)
        else:
            clean.deal = _deal(row, lookups)
            clean.contact = _contact(row, required=False)
            clean.company = _company(row, required=False)
        if row.ok:
            result.rows.append(clean)
        else:
            result.invalid_lines.add(record.line)
    return result
