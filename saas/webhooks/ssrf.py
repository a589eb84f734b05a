"""The SSRF guard: a webhook URL may only reach public addresses.

A URL is checked when it is saved and again before every connection (DNS can change
between the two, or answer differently each time): every address its host resolves to
must be a public unicast address, unless it lies in one of the networks the
`WEBHOOK_ALLOWED_NETWORKS` setting names (development and tests). The delivery then
connects to the very address that was checked, never resolving the name a second time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from saas.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
MAX_URL = 2000
METADATA = (ipaddress.ip_network("169.254.169.254/32"), ipaddress.ip_network("fd00:ec2::254/128"),
            ipaddress.ip_network("100.100.100.200/32"))


class ForbiddenAddress(ValidationFailed):
    """The URL's host is (or resolves to) an address webhooks may not reach."""


@dataclass(frozen=True)
class Target:
    """A checked URL: what to connect to (`address`) and what to call it (`host`)."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    address: str


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def address_class(address: IPAddress) -> str | None:
    """Why an address is not reachable by webhooks (None: a public unicast address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address_class(address.ipv4_mapped)
    if any(address in net for net in METADATA):
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def parse(url: str, *, require_https: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an acceptable URL, or a typed error."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise ValidationFailed(f"url must be 1-{MAX_URL} characters", field="url")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise ValidationFailed("not a valid URL", field="url") from e
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValidationFailed("url must start with https:// (or http:// in development)",
                               field="url")
    if require_https and scheme != "https":
        raise ValidationFailed("webhook URLs must use https", field="url")
    if parts.username is not None or parts.password is not None:
        raise ValidationFailed("credentials in the URL are not allowed; use the signature",
                               field="url")
    if not parts.hostname:
        raise ValidationFailed("the URL has no host", field="url")
    if parts.fragment:
        raise ValidationFailed("the URL may not have a #fragment", field="url")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80), path


class Guard:
    """Checks URLs against the address rules and the allow-list."""

    def __init__(self, allowed_networks: Sequence[str], *, require_https: bool,
                 resolver: Resolver = system_resolver) -> None:
        try:
            self.allowed = [ipaddress.ip_network(n, strict=False) for n in allowed_networks]
        except ValueError as e:
            raise ValueError(f"WEBHOOK_ALLOWED_NETWORKS: {e}") from e
        self.require_https = require_https
        self.resolver = resolver

    def _allowed(self, address: IPAddress) -> bool:
        return any(address in net for net in self.allowed if net.version == address.version)

    async def check(self, url: str) -> Target:
        """Resolve and check `url`; every address must pass, the first is used."""
        scheme, host, port, path = parse(url, require_https=self.require_https)
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await self.resolver(host, port)
            except (OSError, UnicodeError) as e:
                raise ValidationFailed(f"the host {host!r} does not resolve", field="url") from e
            if not addresses:
                raise ValidationFailed(f"the host {host!r} does not resolve", field="url")
        for text_address in addresses:
            address = ipaddress.ip_address(text_address.split("%")[0])
            why = address_class(address)
            if why is not None and not self._allowed(address):
                shown = host if literal is not None else f"{host} ({address})"
                raise ForbiddenAddress(f"the URL's host {shown} is {why}; webhooks only reach "
                                       "public addresses", field="url")
        return Target(url=url, scheme=scheme, host=host, port=port, path=path,
                      address=addresses[0])
