"""The host guard's connection model: one lookup, the request sent to the checked address, no
fail-open when the peer cannot be confirmed, HTTPS names kept, every IPv6 form of IPv4, proxies
only when asked. Real servers on 127.0.0.1; the resolver is replaced at ``socket.getaddrinfo``.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from pytest_httpserver import HTTPServer

from modelslab_provider.download import Copier, DownloadRefused, HostGuard, address_problem, hosts
from modelslab_provider.download.hosts import Pin
from modelslab_provider.download.pinning import PeerUnconfirmed, PinnedAdapter, confirm_peer
from modelslab_provider.operators import storage
from tests.unit import test_storage
from tests.unit.test_storage import BODY, Script, listing, make_context, store, trust

server = test_storage.server  # the scripted HTTP server fixture


class Resolver:
    """``socket.getaddrinfo`` answering ``names`` from a table (and numeric hosts as the system does)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, names: dict[str, str | None]) -> None:
        self.real = socket.getaddrinfo
        self.names = names
        self.asked: list[str] = []
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in self.names:
            self.asked.append(name)
            answer = self.names[name]
            if answer is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return self.real(answer, port, *args, **kwargs)
        return self.real(host, port, *args, **kwargs)


# ----- every IPv6 form that carries an IPv4 address ------------------------------------------------


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("64:ff9b::a9fe:a9fe", "link-local (NAT64 form of 169.254.169.254)"),
        ("64:ff9b::127.0.0.1", "loopback (NAT64 form of 127.0.0.1)"),
        ("64:ff9b:1::a9fe:a9fe", "link-local (NAT64 form of 169.254.169.254)"),
        ("64:ff9b:1::808:808", "reserved (local-use NAT64 prefix)"),  # never a global address
        ("::ffff:10.0.0.1", "private (IPv4-mapped form of 10.0.0.1)"),
        ("::ffff:0:7f00:1", "loopback (IPv4-translated form of 127.0.0.1)"),
        ("::7f00:1", "loopback (IPv4-compatible form of 127.0.0.1)"),
        ("::a9fe:a9fe", "link-local (IPv4-compatible form of 169.254.169.254)"),
        ("2002:a9fe:a9fe::1", "link-local (6to4 form of 169.254.169.254)"),
        ("2002:c0a8:1::", "private (6to4 form of 192.168.0.1)"),
        ("2001:0:4136:e378:8000:63bf:5601:5601", "link-local (Teredo client form of 169.254.169.254)"),
        ("fec0::1", "site-local"),
        ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8: public
        ("2002:808:808::1", None),  # 6to4 of 8.8.8.8: public
        ("::ffff:8.8.8.8", None),
        ("::1", "loopback"),
        ("::", "unspecified"),
    ],
)
def test_an_ipv6_address_is_judged_by_the_ipv4_it_carries(address: str, problem: str | None) -> None:
    assert address_problem(address) == problem


# ----- one lookup, the checked address connected to ------------------------------------------------


def test_the_request_goes_to_the_checked_address_under_the_url_host(
    server: tuple[str, Script],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, script = server
    resolver = Resolver(monkeypatch, {"cdn.example.test": "127.0.0.1"})
    url = base.replace("127.0.0.1", "cdn.example.test") + "/ok.mp4"
    assert len(store([url], f"file://{tmp_path}/v").execute(make_context())) == 1
    assert resolver.asked == ["cdn.example.test"]  # the HTTP library did not look the name up again
    assert script.headers[-1]["Host"] == f"cdn.example.test:{script.port}"


@pytest.mark.parametrize("path", ["/ok.mp4", "/to-ok"])
def test_an_unconfirmed_peer_is_refused_before_anything_is_sent(
    server: tuple[str, Script],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    """No fail-open: a socket whose peer cannot be read gets no request, even from a trusted origin
    and even for a redirect with an empty body."""
    base, script = server
    real = socket.socket.getpeername

    def unreadable(sock: socket.socket) -> Any:
        if sock.getsockname()[1] == script.port:
            return real(sock)  # the server's own side
        raise OSError(107, "Transport endpoint is not connected")

    monkeypatch.setattr(socket.socket, "getpeername", unreadable)
    conn = {"conn_type": "modelslab", "password": "sk-unit-guard", "host": base}
    monkeypatch.setenv("AIRFLOW_CONN_MODELSLAB_GUARD", json.dumps(conn))
    op = store(
        [f"{base}{path}"],
        f"file://{tmp_path}/v",
        allow_private_hosts=False,
        modelslab_conn_id="modelslab_guard",
    )
    with pytest.raises(AirflowFailException, match=r"connected address could not be confirmed"):
        op.execute(make_context())
    assert script.hits == {}
    assert listing(tmp_path / "v") == []


def test_a_peer_other_than_the_pinned_address_is_refused(server: tuple[str, Script]) -> None:
    _, script = server
    sock = socket.create_connection(("127.0.0.1", script.port))
    with pytest.raises(PeerUnconfirmed, match=r"reached 127\.0\.0\.1, not the checked address 127\.0\.0\.2"):
        confirm_peer(sock, "127.0.0.2")
    assert sock.fileno() == -1  # closed


def test_the_adapter_sends_only_the_url_that_was_checked(server: tuple[str, Script]) -> None:
    base, script = server
    with requests.Session() as session:
        adapter = PinnedAdapter()
        session.mount("http://", adapter)
        adapter.pin = Pin("http", "other.example.test", script.port, "127.0.0.1")
        with pytest.raises(DownloadRefused, match="not the URL whose host was checked"):
            session.get(f"{base}/ok.mp4", timeout=5)
        adapter.pin = None
        with pytest.raises(DownloadRefused):
            session.get(f"{base}/ok.mp4", timeout=5)
    assert script.hits == {}


# ----- HTTPS: the URL's host for SNI and the certificate -------------------------------------------


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[HTTPServer, list[str], Path]]:
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("video.example.test").configure_cert(context)
    names: list[str] = []
    context.sni_callback = lambda sslobj, name, ctx: names.append(name)  # type: ignore[assignment,misc]
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    httpd = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    httpd.expect_request("/v.mp4").respond_with_data(BODY, content_type="video/mp4")
    httpd.start()
    yield httpd, names, bundle
    httpd.clear()
    httpd.stop()


def test_https_keeps_the_host_for_sni_and_the_certificate(
    tls: tuple[HTTPServer, list[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    httpd, names, bundle = tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    Resolver(monkeypatch, {"video.example.test": "127.0.0.1"})
    url = f"https://video.example.test:{httpd.port}/v.mp4"
    assert len(store([url], f"file://{tmp_path}/v").execute(make_context())) == 1
    assert names == ["video.example.test"]
    assert httpd.log[0][0].host == f"video.example.test:{httpd.port}"
    # the certificate is still checked: at the address itself it does not match
    with pytest.raises(AirflowException, match=r"SSLError|certificate"):
        store([f"https://127.0.0.1:{httpd.port}/v.mp4"], f"file://{tmp_path}/w", download_attempts=1).execute(
            make_context()
        )
    assert listing(tmp_path / "w") == []


# ----- proxies: ignored unless asked for -----------------------------------------------------------


@pytest.fixture
def proxy_env(server: tuple[str, Script], monkeypatch: pytest.MonkeyPatch) -> str:
    base, _ = server
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", base)
    monkeypatch.setenv("http_proxy", base)
    return base


def _logged(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    out = capsys.readouterr()
    return out.out + out.err + caplog.text


def test_proxy_variables_are_ignored_by_default(
    server: tuple[str, Script],
    proxy_env: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, script = server
    Resolver(monkeypatch, {"cdn.example.test": None})
    op = store(
        ["http://cdn.example.test/ok.mp4"],
        f"file://{tmp_path}/v",
        allow_private_hosts=False,
        download_attempts=1,
    )
    with pytest.raises(AirflowException, match=r"could not resolve cdn\.example\.test"):
        op.execute(make_context())
    assert script.hits == {}  # the proxy was not asked
    assert "proxy environment variables are ignored" in _logged(capsys, caplog)


def test_the_opt_in_proxy_mode_sends_through_the_proxy_and_says_so(
    server: tuple[str, Script],
    proxy_env: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, script = server
    Resolver(monkeypatch, {"cdn.example.test": None})
    url = "http://cdn.example.test/ok.mp4"
    uris = store([url], f"file://{tmp_path}/v", allow_private_hosts=False, use_env_proxies=True).execute(
        make_context()
    )
    assert len(uris) == 1
    assert script.hits == {"/ok.mp4": 1}
    assert "the proxy resolves names and decides which addresses are reached" in _logged(capsys, caplog)
    # what the worker can resolve is still checked before it goes to the proxy
    with pytest.raises(AirflowFailException, match="a loopback address"):
        store(
            ["http://localhost/ok.mp4"],
            f"file://{tmp_path}/w",
            allow_private_hosts=False,
            use_env_proxies=True,
        ).execute(make_context())
    assert script.hits == {"/ok.mp4": 1}


def test_a_copier_outside_airflow_ignores_the_environment(
    server: tuple[str, Script],
    proxy_env: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No ``.netrc`` credentials or proxy picked up by the download session."""
    from upath import UPath

    base, script = server
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login user password hunter2\n")
    monkeypatch.setenv("NETRC", str(netrc))
    with Copier(UPath(f"file://{tmp_path}/v"), guard=HostGuard(allow_private=True)) as copier:
        copier.copy(f"{base}/ok.mp4", 0)
    assert "Authorization" not in script.headers[-1]
    assert script.headers[-1]["Host"] == f"127.0.0.1:{script.port}"


# ----- 11.15b (from test_storage.py): public hosts only, on every redirect hop ------------------


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("100.64.0.1", "reserved"),  # carrier-grade NAT
        ("0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_classes(address: str, problem: str | None) -> None:
    found = address_problem(address)
    assert (found is None) if problem is None else (found is not None and found.startswith(problem))


@pytest.mark.parametrize("path", ["/ok.mp4", "/to-ok"])
def test_a_loopback_source_is_refused_unless_allowed(
    server: tuple[str, Script], tmp_path: Path, path: str
) -> None:
    base, script = server
    for url in (f"{base}{path}", f"{base.replace('127.0.0.1', 'localhost')}{path}"):
        op = store([url], f"file://{tmp_path}/v", allow_private_hosts=False)
        with pytest.raises(
            AirflowFailException, match=r"at 127\.0\.0\.1, a loopback.*allow_private_hosts=True"
        ):
            op.execute(make_context())
    assert script.hits == {}  # refused before connecting
    assert listing(tmp_path / "v") == []
    # the same task with the explicit opt-in copies it (following the redirect by hand)
    uris = store([f"{base}{path}"], f"file://{tmp_path}/v", allow_private_hosts=True).execute(make_context())
    assert len(uris) == 1
    assert (tmp_path / "v" / uris[0].rsplit("/", 1)[-1]).read_bytes() == BODY


def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A name with one public and one private address is refused (naming the private one)."""
    monkeypatch.setattr(hosts, "resolve_host", lambda host, port: ["93.184.216.34", "10.0.0.7"])
    op = store(["https://cdn.example.test/a.mp4"], f"file://{tmp_path}/v", allow_private_hosts=False)
    with pytest.raises(AirflowFailException, match=r"'cdn\.example\.test' is at 10\.0\.0\.7, a private"):
        op.execute(make_context())


def test_the_modelslab_connection_origin_is_trusted(
    server: tuple[str, Script], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = server
    conn_id = trust(monkeypatch, base)
    dest = tmp_path / "v"
    op = store([f"{base}/ok.mp4"], f"file://{dest}", allow_private_hosts=False, modelslab_conn_id=conn_id)
    assert len(op.execute(make_context())) == 1
    # another origin on the same machine (other host name) is not
    other = base.replace("127.0.0.1", "localhost")
    op = store([f"{other}/ok.mp4"], f"file://{dest}", allow_private_hosts=False, modelslab_conn_id=conn_id)
    with pytest.raises(AirflowFailException, match="loopback"):
        op.execute(make_context())


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "/to-metadata",
            r"169\.254\.169\.254/latest/meta-data/ \(a redirect from .*/to-metadata\).*link-local",
        ),
        ("/to-localhost", r"localhost:\d+/ok\.mp4 \(a redirect from .*/to-localhost\).*loopback"),
    ],
)
def test_every_redirect_hop_is_checked(
    server: tuple[str, Script], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, message: str
) -> None:
    """The first hop is allowed (the trusted connection origin); where it redirects to is not."""
    base, script = server
    conn_id = trust(monkeypatch, base)
    op = store(
        [f"{base}{path}"], f"file://{tmp_path}/v", allow_private_hosts=False, modelslab_conn_id=conn_id
    )
    with pytest.raises(AirflowFailException, match=message):
        op.execute(make_context())
    assert script.hits == {path: 1}  # the redirect target was never requested
    assert listing(tmp_path / "v") == []


def test_redirect_loops_end(server: tuple[str, Script], tmp_path: Path) -> None:
    base, script = server
    with pytest.raises(AirflowFailException, match=f"more than {storage.MAX_REDIRECTS} redirects"):
        store([f"{base}/loop"], f"file://{tmp_path}/v").execute(make_context())
    assert script.hits == {"/loop": storage.MAX_REDIRECTS + 1}
