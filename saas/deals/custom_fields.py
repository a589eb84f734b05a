"""Per-tenant custom field definitions and the type check of deals' values."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from saas.db import UnitOfWork
from saas.deals.models import CustomFieldDef
from saas.errors import Conflict, ValidationFailed
from tenants.principal import Principal
from tenants.scopes import Scope

TYPES = ("text", "number", "boolean", "date", "choice")
KEY = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_TEXT = 2000


async def define(
    *, uow: UnitOfWork, principal: Principal, key: str, label: str, type: str,
    choices: list[str] | None, required: bool,
) -> CustomFieldDef:
    principal.require(Scope.PIPELINES_WRITE)
    if not KEY.match(key):
        raise ValidationFailed("key must be snake_case, starting with a letter", field="key")
    if type not in TYPES:
        raise ValidationFailed(f"type must be one of {', '.join(TYPES)}", field="type")
    if type == "choice" and not choices:
        raise ValidationFailed("a choice field needs choices", field="choices")
    definition = CustomFieldDef(tenant_id=principal.tenant_id, id=uuid.uuid4(), key=key,
                                label=label.strip() or key, type=type,
                                choices=choices if type == "choice" else None, required=required)
    try:
        async with uow.session.begin_nested():
            uow.session.add(definition)
            await uow.session.flush()
    except IntegrityError as e:
        raise Conflict(f"a custom field {key!r} already exists", field="key") from e
    return definition


async def definitions(uow: UnitOfWork) -> dict[str, CustomFieldDef]:
    rows = await uow.session.execute(select(CustomFieldDef).order_by(CustomFieldDef.key))
    return {d.key: d for d in rows.scalars()}


def _check(definition: CustomFieldDef, value: Any) -> Any:
    field = f"customFields.{definition.key}"
    kind = definition.type
    if kind == "text" and isinstance(value, str) and len(value) <= MAX_TEXT:
        return value
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    if kind == "choice" and value in (definition.choices or []):
        return value
    raise ValidationFailed(f"{definition.key} must be a valid {kind}", field=field)


async def validate(
    uow: UnitOfWork, values: dict[str, Any], *, existing: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Merge `values` into `existing`; unknown keys and wrongly typed values are refused.
    A null value removes the field (unless it is required)."""
    defs = await definitions(uow)
    merged = dict(existing or {})
    for key, value in values.items():
        if key not in defs:
            raise ValidationFailed(f"unknown custom field {key!r}", field=f"customFields.{key}")
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _check(defs[key], value)
    missing = [k for k, d in defs.items() if d.required and k not in merged]
    if missing:
        raise ValidationFailed(f"required custom field {missing[0]!r} is missing",
                               field=f"customFields.{missing[0]}")
    return merged
