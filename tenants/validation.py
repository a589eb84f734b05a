"""Shared input rules of the tenants package."""

from __future__ import annotations

import re

from saas.errors import ValidationFailed

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def validate_email(email: str, *, field: str = "email") -> str:
    email = email.strip()
    if not EMAIL.match(email) or len(email) > 254:
        raise ValidationFailed("not a valid email address", field=field)
    return email
