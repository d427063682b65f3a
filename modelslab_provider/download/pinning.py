"""Send a request to the address the host guard checked, and to no other.

:class:`PinnedAdapter` is a ``requests`` transport adapter. Before each request the copier gives
it the :class:`~.hosts.Pin` of that hop (the URL's scheme, host and port, and the checked address).
The adapter opens its urllib3 pool on the address itself, so no second DNS lookup happens, while
the URL's host stays what the server sees: the ``Host`` header (set by the copier), the TLS SNI name
and the name the certificate is checked against (``server_hostname``). Each new socket's peer
address is compared with the pinned one before a byte is sent; a request whose target is not the
pinned one, or a socket whose peer cannot be read, is refused rather than sent (fail closed).
Only used when ``requests`` is: importing :mod:`modelslab_provider.download` does not load it.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from modelslab_provider.client.core import redact_url
from modelslab_provider.download.errors import DownloadRefused
from modelslab_provider.download.hosts import Pin, request_origin


class PeerUnconfirmed(DownloadRefused):
    """The socket's peer is not (or cannot be shown to be) the checked address: nothing was sent."""


def confirm_peer(sock: socket.socket, expected: str) -> None:
    """Refuse ``sock`` (closing it) unless its peer address is ``expected``."""
    try:
        peer = ipaddress.ip_address(str(sock.getpeername()[0]).split("%", 1)[0])
        wanted = ipaddress.ip_address(expected.strip("[]").split("%", 1)[0])
    except (OSError, ValueError, IndexError) as exc:
        sock.close()
        raise PeerUnconfirmed(
            f"Refused to send a request to {expected}: the connected address could not be confirmed "
            f"({type(exc).__name__}). Nothing was sent or written."
        ) from None
    if peer != wanted:
        sock.close()
        raise PeerUnconfirmed(
            f"Refused to send a request: the connection reached {peer}, not the checked address "
            f"{wanted}. Nothing was sent or written."
        )


class _PinnedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        confirm_peer(sock, self._dns_host)
        return sock


class _PinnedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        confirm_peer(sock, self._dns_host)  # before the TLS handshake
        return sock


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class PinnedAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that connects only to :attr:`pin`'s address (``None``: proxied hops only)."""

    def __init__(self, **kwargs: Any) -> None:
        self.pin: Pin | None = None
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _PinnedHTTPPool, "https": _PinnedHTTPSPool}

    def get_connection_with_tls_context(
        self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
    ) -> HTTPConnectionPool:
        if select_proxy(request.url, proxies):
            if self.pin is not None:
                raise DownloadRefused(f"Refused to send {redact_url(request.url)} through a proxy.")
            # proxy mode (opt-in): the proxy resolves and connects; see docs/security.md
            proxied = super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
            assert isinstance(proxied, HTTPConnectionPool)
            return proxied
        pin = self.pin
        if pin is None or request_origin(request.url) != pin.origin:
            raise DownloadRefused(
                f"Refused to send {redact_url(request.url)}: it is not the URL whose host was checked."
            )
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        host_params["host"] = pin.address
        extra: dict[str, Any] = dict(pool_kwargs)
        if pin.scheme == "https":
            # the certificate is checked against, and SNI names, the URL's host, not the address
            extra["server_hostname"] = pin.host
        pool = self.poolmanager.connection_from_host(**host_params, pool_kwargs=extra)
        assert isinstance(pool, HTTPConnectionPool)
        return pool

    def get_connection(self, url: Any, proxies: Any = None) -> HTTPConnectionPool:
        raise DownloadRefused("Refused: this adapter only connects through get_connection_with_tls_context.")
