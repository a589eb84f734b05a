"""Reading an uploaded file: CSV or JSON Lines into records with their line numbers, and the
column mapping (defaults from the header names)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

FIELDS = ("company_name", "company_domain", "contact_name", "contact_email", "contact_phone",
          "title", "amount", "currency", "segment", "stage", "owner_email",
          "expected_close_date", "temperature", "labels", "lost_reason", "probability")
# Header spellings that map to a field by default (after lower-casing, _ for spaces/dashes).
ALIASES = {
    "deal": "title", "deal_title": "title", "deal_name": "title", "value": "amount",
    "deal_value": "amount", "company": "company_name", "organization": "company_name",
    "organisation": "company_name", "account": "company_name", "domain": "company_domain",
    "website": "company_domain", "contact": "contact_name", "person": "contact_name",
    "email": "contact_email", "e_mail": "contact_email", "phone": "contact_phone",
    "owner": "owner_email", "owner_e_mail": "owner_email", "pipeline": "segment",
    "close_date": "expected_close_date", "expected_close": "expected_close_date",
    "tags": "labels", "label": "labels", "reason": "lost_reason", "deal_stage": "stage",
}
# `name` means the kind's own name.
NAME_FIELD = {"companies": "company_name", "contacts": "contact_name", "deals": "title"}


@dataclass(frozen=True)
class Problem:
    """Why a row (or the file) cannot be imported; `column` as the file names it."""

    line: int
    column: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "reason": self.reason}


@dataclass(frozen=True)
class Record:
    line: int  # where the record starts in the file (1 = the first line)
    values: dict[str, str]  # header -> raw text


@dataclass
class Parsed:
    columns: list[str]
    records: list[Record]
    problems: list[Problem]


def _normal(header: str) -> str:
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def default_mapping(kind: str, columns: Iterable[str]) -> dict[str, str | None]:
    """header -> field (None: not imported), by name."""
    mapping: dict[str, str | None] = {}
    taken: set[str] = set()
    for column in columns:
        name = _normal(column)
        field = NAME_FIELD.get(kind) if name == "name" else ALIASES.get(name, name)
        if field in FIELDS and field not in taken:
            mapping[column] = field
            taken.add(field)
        else:
            mapping[column] = None
    return mapping


def _text(data: bytes) -> tuple[str | None, Problem | None]:
    if b"\x00" in data:
        return None, Problem(0, None, "the file contains NUL bytes (binary, not text)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        return None, Problem(line, None, "the file is not UTF-8 text")
    return text, None


def parse_csv(data: bytes) -> Parsed:
    text, problem = _text(data)
    if text is None:
        return Parsed([], [], [problem] if problem else [])
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return Parsed([], [], [Problem(1, None, "the file is empty")])
    except csv.Error as e:
        return Parsed([], [], [Problem(1, None, f"not a CSV header: {e}")])
    columns = [h.strip() for h in header]
    problems: list[Problem] = []
    if len(set(columns)) != len(columns) or any(not c for c in columns):
        problems.append(Problem(1, None, "column names must be unique and not empty"))
        return Parsed(columns, [], problems)
    records: list[Record] = []
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            problems.append(Problem(start, None, f"malformed CSV: {e}"))
            break
        if row and any(cell.strip() for cell in row):
            if len(row) != len(columns):
                problems.append(Problem(start, None, f"expected {len(columns)} fields, "
                                                     f"found {len(row)}"))
            else:
                records.append(Record(start, dict(zip(columns, row, strict=True))))
        start = reader.line_num + 1
    return Parsed(columns, records, problems)


def parse_jsonl(data: bytes) -> Parsed:
    text, problem = _text(data)
    if text is None:
        return Parsed([], [], [problem] if problem else [])
    columns: dict[str, None] = {}
    records: list[Record] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            problems.append(Problem(number, None, "not a JSON object"))
            continue
        if not isinstance(value, dict):
            problems.append(Problem(number, None, "not a JSON object"))
            continue
        cells: dict[str, str] = {}
        for key, cell in value.items():
            columns.setdefault(str(key), None)
            if cell is None:
                cells[str(key)] = ""
            elif isinstance(cell, list):
                cells[str(key)] = orjson.dumps(cell).decode()
            else:
                cells[str(key)] = str(cell)
        records.append(Record(number, cells))
    return Parsed(list(columns), records, problems)


def parse(data: bytes, fmt: str) -> Parsed:
    return parse_csv(data) if fmt == "csv" else parse_jsonl(data)


def count_records(data: bytes, fmt: str) -> tuple[list[str], int, list[Problem]]:
    parsed = parse(data, fmt)
    return parsed.columns, len(parsed.records), parsed.problems
