"""SMTP delivery with the outcome classified for exactly-once bookkeeping.

`deliver` runs MAIL FROM and RCPT TO, then calls `before_data` (which records, in its own
committed transaction, that the message is being handed over) and only then sends DATA.
Failures are reported as one of:

- `Transient`: not delivered, worth retrying (4xx, connection/timeout before DATA);
- `Permanent`: not delivered, never will be (5xx);
- `Unconfirmed`: the connection failed while DATA was in flight: the server may or may not
  have accepted the message, so it must not be sent again blindly;
- `Fenced`: `before_data` refused (another worker owns the send now, or the enrollment
  stopped): nothing was sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiosmtplib

from saas.settings import Settings


class DeliveryError(Exception):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Transient(DeliveryError):
    pass


class Permanent(DeliveryError):
    pass


class Unconfirmed(DeliveryError):
    pass


class Fenced(DeliveryError):
    pass


BeforeData = Callable[[], Awaitable[bool]]
_NETWORK = (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError)


class Mailer(Protocol):
    async def deliver(self, *, sender: str, recipient: str, message: bytes,
                      before_data: BeforeData) -> str: ...

    async def close(self) -> None: ...


def _classify(e: aiosmtplib.SMTPResponseException) -> DeliveryError:
    text = f"{e.code} {e.message}".strip()
    if 400 <= e.code < 500:
        return Transient(text, e.code)
    return Permanent(text, e.code)


class SmtpMailer:
    """One connection per tick, reused for every message; reconnects after a failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._smtp: aiosmtplib.SMTP | None = None

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        s = self.settings
        smtp = aiosmtplib.SMTP(hostname=s.smtp_host, port=s.smtp_port, username=s.smtp_username,
                               password=s.smtp_password, start_tls=s.smtp_starttls,
                               timeout=s.smtp_timeout_seconds)
        try:
            await smtp.connect()
        except aiosmtplib.SMTPResponseException as e:
            smtp.close()
            raise Transient(f"connect: {e.code} {e.message}", e.code) from e
        except _NETWORK as e:
            smtp.close()
            raise Transient(f"connect: {type(e).__name__}: {e}") from e
        self._smtp = smtp
        return smtp

    async def _reset(self, smtp: aiosmtplib.SMTP) -> None:
        try:
            await smtp.rset()
        except _NETWORK:
            await self.close()

    async def deliver(self, *, sender: str, recipient: str, message: bytes,
                      before_data: BeforeData) -> str:
        smtp = await self._connection()
        try:
            await smtp.mail(sender)
            await smtp.rcpt(recipient)
        except aiosmtplib.SMTPResponseException as e:
            await self._reset(smtp)
            raise _classify(e) from e
        except _NETWORK as e:
            await self.close()
            raise Transient(f"{type(e).__name__}: {e}") from e
        if not await before_data():
            await self._reset(smtp)
            raise Fenced("the send is no longer ours to deliver")
        try:
            response = await smtp.data(message)
        except aiosmtplib.SMTPResponseException as e:
            # The server answered: it did not take the message.
            await self._reset(smtp)
            raise _classify(e) from e
        except _NETWORK as e:
            await self.close()
            raise Unconfirmed(f"connection lost during DATA: {type(e).__name__}: {e}") from e
        return f"{response.code} {response.message}"

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if smtp.is_connected:
                await smtp.quit()
        except _NETWORK:
            smtp.close()
