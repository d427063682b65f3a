"""Which hosts a copy may fetch from: public internet addresses only, on every redirect hop.

The host of every URL and of every redirect hop is resolved and each address checked (loopback,
link-local such as the cloud metadata address 169.254.169.254, private and reserved ranges are
refused), and so is the address the connection really went to, so a URL list taken from an API
answer cannot make a worker read its own network. ``allow_private`` lifts this; a trusted origin
(the ModelsLab connection's own Base URL, e.g. the local simulator) is always allowed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modelslab_provider.client.core import redact_url
from modelslab_provider.download.errors import DownloadRefused, VideoDownloadError, describe

if TYPE_CHECKING:
    import requests

#: (scheme, host, port), the scheme's default port filled in
Origin = tuple[str, str, int]


def address_problem(address: str) -> str | None:
    """Why an IP address is not a public internet address (``None`` when it is one).

    IPv4 addresses embedded in IPv6 (``::ffff:127.0.0.1``, 6to4) are judged as the IPv4 address
    they reach.
    """
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            ip = embedded
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
    if not ip.is_global:
        return "reserved"
    return None


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an IP literal is its own single address)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


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


def proxied(url: str) -> bool:
    """Whether requests sends ``url`` through a proxy from the environment (``HTTPS_PROXY``, ...)."""
    from requests.utils import get_environ_proxies

    try:
        proxies = get_environ_proxies(url)
    except Exception:
        return False
    scheme = urlsplit(url).scheme.lower()
    return bool(proxies.get(scheme) or proxies.get("all"))


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

    def check_host(self, url: str, source: str) -> None:
        """Refuse ``url`` unless every address its host resolves to is public (or it is allowed)."""
        if self.allow_private:
            return
        where = origin(url)
        if where is None:
            raise DownloadRefused(
                f"Could not copy {redact_url(source)}: {redact_url(url)} is not an http(s) URL."
            )
        host, port = where[1], where[2]
        try:
            addresses = resolve_host(host, port)
        except (OSError, UnicodeError) as exc:
            if proxied(url):
                # behind an HTTP proxy the proxy resolves names, and the worker may not be able to
                # (its egress is the proxy's to control); an IP literal needs no lookup, never gets here
                return
            raise VideoDownloadError(f"could not resolve {host}: {describe(exc)}") from None
        for address in addresses:
            problem = address_problem(address)
            if problem is not None and where != self._trusted_origin():
                raise _refusal(url, source, host, address, problem)

    def check_peer(self, response: requests.Response, url: str, source: str) -> None:
        """Check the address actually connected to (a DNS answer may change between two lookups)."""
        if self.allow_private or proxied(url):
            return  # through a proxy the peer is the proxy, not the source
        sock = socket_of(response)
        try:
            peer = str(sock.getpeername()[0]) if sock is not None else None
        except OSError:
            peer = None
        problem = address_problem(peer) if peer else None
        if peer and problem is not None and origin(url) != self._trusted_origin():
            response.close()
            raise _refusal(url, source, urlsplit(url).hostname or "?", peer, problem)


def _refusal(url: str, source: str, host: str, address: str, problem: str) -> DownloadRefused:
    via = "" if url == source else f" (a redirect from {redact_url(source)})"
    where = " where cloud metadata services live" if problem == "link-local" else ""
    return DownloadRefused(
        f"Refused to fetch {redact_url(url)}{via}: host {host!r} is at {address}, a {problem} "
        f"address{where}, not a public internet address. Sources and every redirect hop must be public "
        "hosts, so that a URL cannot reach the worker's own network. If you trust this host, "
        "set allow_private_hosts=True on the task. Nothing was written."
    )
