"""Invitation and password-reset e-mails, through the same SMTP path as campaigns."""

from __future__ import annotations

import email.utils
from email.message import EmailMessage

from saas.campaigns.mailer import SmtpMailer
from saas.settings import Settings


def message(settings: Settings, *, sender: str, to: str, subject: str, body: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid(domain="saas.invalid")
    msg.set_content(body)
    return msg.as_bytes()


async def send(settings: Settings, *, sender: str | None, to: str, subject: str,
               body: str) -> None:
    """One message; raises saas.campaigns.mailer.DeliveryError when it was not accepted."""
    mailer = SmtpMailer(settings)
    sender = sender or settings.mail_default_sender
    try:
        async def go_ahead() -> bool:
            return True

        await mailer.deliver(sender=sender, recipient=to,
                             message=message(settings, sender=sender, to=to, subject=subject,
                                             body=body),
                             before_data=go_ahead)
    finally:
        await mailer.close()


def link(settings: Settings, path: str, token: str) -> str:
    return f"{settings.app_base_url.rstrip('/')}/{path}?token={token}"
