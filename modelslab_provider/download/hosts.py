"""Which hosts a copy may fetch from, and the one address each request may connect to.

The host of every URL and of every redirect hop is resolved once (``socket.getaddrinfo``) and
every address it resolves to is checked: loopback, link-local (the cloud metadata address
169.254.169.254), private, shared, multicast and reserved ranges are refused, IPv6 forms that
carry an IPv4 address (IPv4-mapped and -compatible, NAT64, 6to4, Teredo) are judged by that IPv4
address. The request is then sent to the checked address itself (:mod:`.pinning`), so a DNS answer
that changes between two lookups cannot steer it elsewhere. ``allow_private`` lifts the address
rule (the connection is still pinned); a trusted origin (the ModelsLab connection's own Base URL,
e.g. the local simulator) is always allowed. Through an HTTP proxy (opt-in) the proxy resolves and
connects, so the decision is the proxy's; see docs/security.md.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modelslab_provider.client.core import redact_url
from modelslab_provider.download.errors import DownloadRefused, VideoDownloadError, describe

if TYPE_CHECKING:
    import requests

#: (scheme, host, port), the scheme's default port filled in
Origin = tuple[str, str, int]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local-use prefix: never global
_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible addresses
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT IPv4-translated addresses


@dataclass(frozen=True)
class Pin:
    """One request's target: the URL's (scheme, host, port) and the checked address to connect to."""

    scheme: str
    host: str
    port: int
    address: str

    @property
    def origin(self) -> Origin:
        return self.scheme, self.host, self.port


def embedded_ipv4(ip: IPAddress) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, each with the name of its form (empty if none)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return [("IPv4-mapped", ip.ipv4_mapped)]
    if ip in _TRANSLATED:
        return [("IPv4-translated", low32)]
    if ip in _COMPATIBLE and int(ip) > 1:  # :: and ::1 are IPv6's own
        return [("IPv4-compatible", low32)]
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return [("NAT64", low32)]
    if ip.sixtofour is not None:
        return [("6to4", ip.sixtofour)]
    if ip.teredo is not None:
        server, client = ip.teredo
        return [("Teredo server", server), ("Teredo client", client)]
    return []


def _class_problem(ip: IPAddress) -> str | None:
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:  # fec0::/10, deprecated, not global
        return "site-local"
    if not ip.is_global:
        return "reserved"
    return None


def address_problem(address: str) -> str | None:
    """Why an IP address is not a public internet address (``None`` when it is one).

    An IPv6 address that carries an IPv4 address is judged as that IPv4 address too (the worse
    answer wins): ``64:ff9b::a9fe:a9fe`` is the link-local 169.254.169.254 through NAT64.
    """
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    carried = list(embedded_ipv4(ip))
    for form, inner in carried:
        problem = _class_problem(inner)
        if problem is not None:
            return f"{problem} ({form} form of {inner})"
    if ip in _NAT64_LOCAL:
        return "reserved (local-use NAT64 prefix)"
    if carried:
        # judged by the IPv4 it carries: Python 3.13's ipaddress calls 6to4, Teredo and NAT64
        # prefixes themselves "not global", whatever the address inside
        return None
    return _class_problem(ip)


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order (an IP literal is its own)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def origin(url: str) -> Origin | None:
    """(scheme, host, port) with the scheme's default port filled in; ``None`` if unusable."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not parts.hostname or scheme not in ("http", "https"):
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def request_origin(url: str) -> Origin | None:
    """The (scheme, host, port) an HTTP library connects to for an already prepared ``url``.

    Parsed the way urllib3 parses it when it picks a connection, so the host that is checked is the
    host a request would reach (``urlsplit`` and urllib3 disagree on some malformed URLs).
    """
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    try:
        parts = parse_url(url)
    except LocationParseError:
        return None
    scheme = (parts.scheme or "").lower()
    if not parts.host or scheme not in ("http", "https"):
        return None
    host = parts.host.strip("[]").lower()
    return scheme, host, parts.port or (443 if scheme == "https" else 80)


def env_proxy(url: str) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``, ``NO_PROXY``, ...) names for ``url``, if any."""
    from requests.utils import get_environ_proxies, select_proxy

    try:
        return select_proxy(url, get_environ_proxies(url))
    except Exception:
        return None


def socket_of(response: requests.Response) -> socket.socket | None:
    """The socket a streamed response is read from, if urllib3 still holds it."""
    raw = getattr(response, "raw", None)
    for path in (("connection", "sock"), ("_connection", "sock"), ("_fp", "fp", "raw", "_sock")):
        value: Any = raw
        for attribute in path:
            value = getattr(value, attribute, None)
        if isinstance(value, socket.socket):
            return value
    return None


class HostGuard:
    """Refuse a URL whose host is not a public internet address, unless allowed or trusted.

    ``trusted_origin`` is called only when a private address is met (so a connection lookup
    behind it is made only when needed) and should remember its answer.
    """

    def __init__(
        self, *, allow_private: bool = False, trusted_origin: Callable[[], Origin | None] | None = None
    ) -> None:
        self.allow_private = allow_private
        self._trusted_origin = trusted_origin or (lambda: None)

    def pin(self, url: str, source: str) -> Pin:
        """Resolve ``url``'s host once, check every address, and return the one to connect to."""
        where = self._where(url, source)
        try:
            addresses = resolve_host(where[1], where[2])
        except (OSError, UnicodeError) as exc:
            raise VideoDownloadError(f"could not resolve {where[1]}: {describe(exc)}") from None
        if not addresses:
            raise VideoDownloadError(f"could not resolve {where[1]}: no address")
        self._check(url, source, where, addresses)
        return Pin(*where, address=addresses[0])

    def check_proxied(self, url: str, source: str) -> None:
        """Check what can be checked of a URL sent through a proxy: its host, when it resolves here.

        The proxy resolves the name again and connects; a name the worker cannot resolve is left to
        it (the proxy is then what keeps internal addresses out of reach).
        """
        where = self._where(url, source)
        try:
            addresses = resolve_host(where[1], where[2])
        except (OSError, UnicodeError):
            return
        self._check(url, source, where, addresses)

    def _where(self, url: str, source: str) -> Origin:
        where = request_origin(url)
        if where is None:
            raise DownloadRefused(
                f"Could not copy {redact_url(source)}: {redact_url(url)} is not an http(s) URL."
            )
        return where

    def _check(self, url: str, source: str, where: Origin, addresses: list[str]) -> None:
        if self.allow_private:
            return
        for address in addresses:
            problem = address_problem(address)
            if problem is not None and where != self._trusted_origin():
                raise _refusal(url, source, where[1], address, problem)


def _refusal(url: str, source: str, host: str, address: str, problem: str) -> DownloadRefused:
    via = "" if url == source else f" (a redirect from {redact_url(source)})"
    where = " where cloud metadata services live" if problem.startswith("link-local") else ""
    return DownloadRefused(
        f"Refused to fetch {redact_url(url)}{via}: host {host!r} is at {address}, a {problem} "
        f"address{where}, not a public internet address. Sources and every redirect hop must be public "
        "hosts, so that a URL cannot reach the worker's own network. If you trust this host, "
        "set allow_private_hosts=True on the task. Nothing was written."
    )
