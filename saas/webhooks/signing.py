"""Standard Webhooks signatures (the `standardwebhooks` library): secrets and headers.

Every attempt of a delivery carries the same `webhook-id` (receivers deduplicate on it), the
attempt's own `webhook-timestamp`, and `webhook-signature` with one `v1,` signature per
valid secret: during a rotation's grace period both the new and the previous secret sign,
so a receiver may verify with either.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def webhook_id(delivery_id: uuid.UUID) -> str:
    return f"msg_{delivery_id.hex}"


def headers(*, delivery_id: uuid.UUID, body: str, secrets_: Sequence[str],
            now: datetime | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    msg_id = webhook_id(delivery_id)
    signatures = " ".join(Webhook(secret).sign(msg_id, at, body) for secret in secrets_)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures}
