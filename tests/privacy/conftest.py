"""The campaign fixtures (a real SMTP server on loopback, mail settings, a clock)."""

from tests.campaigns.conftest import clock, mail_settings, smtp

__all__ = ["clock", "mail_settings", "smtp"]
