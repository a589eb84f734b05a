"""Message templates: a small, strict placeholder syntax checked when a campaign is saved.

    Hello {{ contact.first_name }}, thanks for choosing us for {{ deal.title }}.

A placeholder is `{{ object.field }}` (or `{{ unsubscribe_url }}`); the fields are listed in
FIELDS. Anything else between braces, an unknown field, or a stray `{{`/`}}` is a validation
error at save time, so rendering at send time cannot fail: a value that is missing for one
deal (no contact, no close date) renders as an empty string. There is no logic, no loops,
no attribute access beyond the whitelist: nothing a tenant writes can execute.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from saas.errors import ValidationFailed

FIELDS: dict[str, tuple[str, ...]] = {
    "deal": ("title", "amount", "currency", "stage", "pipeline", "expected_close_date",
             "temperature", "labels", "lost_reason"),
    "contact": ("name", "first_name", "email", "phone"),
    "company": ("name",),
    "owner": ("name", "first_name", "email"),
    "tenant": ("name",),
    "campaign": ("name",),
}
TOP_LEVEL = ("unsubscribe_url",)
ALLOWED = frozenset({f"{o}.{f}" for o, fs in FIELDS.items() for f in fs} | set(TOP_LEVEL))

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*\}\}")


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and placeholder names, alternating."""

    parts: tuple[str, ...]  # even indexes: text; odd indexes: a placeholder name

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(self.parts[1::2])

    def render(self, values: Mapping[str, str]) -> str:
        return "".join(part if i % 2 == 0 else values.get(part, "")
                       for i, part in enumerate(self.parts))


def parse(source: str, *, field: str) -> Template:
    """Parse and check a template; `field` names the input in the error."""
    parts: list[str] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(source):
        literal = source[pos:match.start()]
        _no_stray_braces(literal, field)
        name = match.group(1)
        if name not in ALLOWED:
            raise ValidationFailed(
                f"unknown template field {{{{{name}}}}}; known: " + ", ".join(sorted(ALLOWED)),
                field=field)
        parts += [literal, name]
        pos = match.end()
    tail = source[pos:]
    _no_stray_braces(tail, field)
    parts.append(tail)
    return Template(tuple(parts))


def _no_stray_braces(literal: str, field: str) -> None:
    if "{{" in literal or "}}" in literal:
        raise ValidationFailed(
            "malformed placeholder: write {{ object.field }}, e.g. {{ deal.title }}", field=field)
