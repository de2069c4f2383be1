"""Which webhook URLs may be called (SSRF guard), checked at registration and again at every delivery.

Without ``webhook_allow_private`` only ``https`` URLs whose host resolves to public (global unicast)
addresses are accepted: a receiver must not be usable to reach the hospital's internal network, the
cloud metadata service or this service itself. The delivery connects to an address checked here (not
to a second lookup), so a DNS answer that changes between check and connection cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL = 2000


class UrlRefused(ValueError):
    """The URL cannot be used as a webhook endpoint; the message says why (it never echoes the URL)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # the name as written (TLS server name, Host header)
    port: int
    path: str  # path + query
    address: str  # the checked IP address to connect to


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _is_public(ip.ipv4_mapped)
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def parse(url: str, allow_private: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an acceptable URL, without resolving it."""
    if not isinstance(url, str) or len(url) > MAX_URL or any(c.isspace() for c in url):
        raise UrlRefused("The URL is not a valid absolute URL.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("The URL is not a valid absolute URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UrlRefused("Webhook URLs must use https.")
    if scheme == "http" and not allow_private:
        raise UrlRefused("Webhook URLs must use https.")
    if parts.username or parts.password:
        raise UrlRefused("Webhook URLs must not carry credentials.")
    if parts.fragment:
        raise UrlRefused("Webhook URLs must not have a fragment.")
    host = (parts.hostname or "").lower()
    if not host:
        raise UrlRefused("The URL is not a valid absolute URL.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port or (443 if scheme == "https" else 80), path


def resolve(url: str, allow_private: bool) -> Target:
    """Check ``url`` and resolve its host; UrlRefused if it is not allowed or does not resolve."""
    scheme, host, port, path = parse(url, allow_private)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UrlRefused("The URL's host does not resolve.") from None
    addresses = []
    for info in infos:
        try:
            addresses.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    if not addresses:
        raise UrlRefused("The URL's host does not resolve.")
    if not allow_private and not all(_is_public(ip) for ip in addresses):
        raise UrlRefused("The URL's host resolves to a private, loopback or reserved address.")
    return Target(scheme, host, port, path, str(addresses[0]))
