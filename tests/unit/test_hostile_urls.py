"""Over 300 hostile source URLs: each refused, nothing written, nothing received by the internal server.

A real HTTP server on 127.0.0.1 plays the worker's internal network; every cell aims at it (or at
the metadata, private and reserved addresses) in another spelling: decimal, octal and hex IPv4,
short forms, userinfo tricks, trailing dots, mixed case, IDNA forms of ``localhost``, every IPv6
form that carries an IPv4 address, and names whose DNS answer alternates between a public and a
private address. Each is tried as a source, behind one redirect and behind a two-hop redirect
chain from a trusted origin (the ModelsLab connection's Base URL, a second real server).

Two things are replaced, both at the operating system's boundary and never inside the guard:
``socket.getaddrinfo`` (a resolver that answers numeric hosts as the system does, ``localhost`` as
loopback, the ``*.example`` names from the table below, and nothing else, so no test asks real
DNS) and ``socket.socket.connect`` for non-loopback addresses (refused and recorded, so a public
answer is never really dialled from a test).
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from pytest_httpserver import HTTPServer
from werkzeug import Response

from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
PORT = "{port}"  # the internal server's port, filled in when the cell runs

#: IDNA spellings of localhost: fullwidth, fullwidth capitals, circled letters, a soft hyphen inside,
#: an ideographic full stop at the end (each maps to "localhost" under IDNA/UTS 46)
IDNA_LOCALHOST = [
    "".join(chr(ord(c) + 0xFEE0) for c in "localhost"),
    "".join(chr(ord(c) + 0xFEE0) for c in "LOCALHOST"),
    "".join(chr(0x24D0 + ord(c) - ord("a")) for c in "localhost"),
    "loc\u00adalhost",
    "localhost\u3002",
]

#: host spellings that all reach the internal server (127.0.0.1:{port}) or the loopback range
LOOPBACK_HOSTS = [
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "127.000.000.001",
    "127.1.2.3",
    "127.255.255.254",
    "2130706433",
    "0x7f000001",
    "0X7F000001",
    "0x7f.1",
    "0X7F.1",
    "0x7f.0.0.1",
    "0x7f.0x0.0x0.0x1",
    "0177.0.0.1",
    "0177.1",
    "0177.0.1",
    "017700000001",
    "0000177.0.0.1",
    "0177.0x0.0.1",
    "0",
    "0.0.0.0",
    "0x0",
    "00",
    "0.0",
    "localhost",
    "LOCALHOST",
    "LocalHost",
    "localhost.",
    "LOCALHOST.",
    "sub.localhost",
    *IDNA_LOCALHOST,
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[0000::1]",
    "[::]",
    "[::ffff:127.0.0.1]",
    "[::FFFF:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:7f00:1]",
    "[::127.0.0.1]",
    "[::7f00:1]",
    "[::ffff:0:127.0.0.1]",
    "[::ffff:0:7f00:1]",
    "[64:ff9b::127.0.0.1]",
    "[64:ff9b::7f00:1]",
    "[64:FF9B::7F00:1]",
    "[64:ff9b:1::7f00:1]",
    "[64:ff9b:1:0:0:0:7f00:1]",
    "[2002:7f00:1::]",
    "[2002:7f00:0001:0:0:0:0:1]",
    "[2002:7f00:1::1]",
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
    "[::ffff:0.0.0.0]",
    "[64:ff9b::0.0.0.0]",
    "user@127.0.0.1",
    "public.example@127.0.0.1",
    "public.example:443@127.0.0.1",
    "user:pass@127.0.0.1",
    "public.example@localhost",
    "public.example@[::ffff:127.0.0.1]",
    "public.example@2130706433",
    "@127.0.0.1",
    "public.example@0x7f.1",
    "a@b@127.0.0.1",
]

#: metadata, private, shared, multicast and reserved addresses in their spellings (port 80)
OTHER_HOSTS = [
    "169.254.169.254",
    "0xa9fea9fe",
    "2852039166",
    "0251.0376.0251.0376",
    "169.254.43518",
    "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "[64:ff9b::a9fe:a9fe]",
    "[64:ff9b::169.254.169.254]",
    "[64:ff9b:1::a9fe:a9fe]",
    "[2002:a9fe:a9fe::]",
    "[2001:0:4136:e378:8000:63bf:5601:5601]",
    "[::a9fe:a9fe]",
    "[::ffff:0:a9fe:a9fe]",
    "[fe80::1]",
    "[fe80::a9fe:a9fe]",
    "[fe80::1%25lo]",
    "metadata.example",
    "10.0.0.1",
    "0xa000001",
    "167772161",
    "012.0.0.1",
    "10.1",
    "192.168.0.1",
    "3232235521",
    "0xc0a80001",
    "192.168.1",
    "172.16.0.1",
    "172.31.255.255",
    "100.64.0.1",
    "198.18.0.1",
    "192.0.0.1",
    "192.0.2.1",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "[fd00::1]",
    "[fc00::1]",
    "[fec0::1]",
    "[ff02::1]",
    "[::ffff:10.0.0.1]",
    "[::ffff:0a00:0001]",
    "[64:ff9b::10.0.0.1]",
    "[64:ff9b::192.168.0.1]",
    "[64:ff9b::100.64.0.1]",
    "[2002:c0a8:1::1]",
    "[2002:0a00:0001::]",
    "[::ffff:100.64.0.1]",
    "[::10.0.0.1]",
    "private.example",
    "mixed.example",
    "mixed-reverse.example",
    "[2001:db8::1]",
]

#: names whose answers alternate: the first lookup public, the next one private, and so on
REBINDING = {
    "rebind.example": "127.0.0.1",
    "rebind-mapped.example": "::ffff:127.0.0.1",
    "rebind-metadata.example": "169.254.169.254",
    "rebind-nat64.example": "64:ff9b::7f00:1",
}
STATIC = {
    "public.example": [PUBLIC_V4],
    "metadata.example": ["169.254.169.254"],
    "private.example": ["10.0.0.7"],
    "mixed.example": [PUBLIC_V4, "127.0.0.1"],
    "mixed-reverse.example": ["::1", PUBLIC_V6],
}
SCHEMES = [
    "file:///etc/passwd",
    "file://localhost/etc/passwd",
    "gopher://127.0.0.1:{port}/_GET%20/",
    "ftp://127.0.0.1:{port}/v.mp4",
    "dict://127.0.0.1:{port}/",
    "ldap://127.0.0.1:{port}/",
    "data:video/mp4;base64,AAAA",
    "javascript:alert(1)",
    "jar:http://127.0.0.1:{port}/!/",
    "netdoc:///etc/passwd",
]


def _cells() -> list[tuple[str, str]]:
    """(how, URL template): each host as a source, behind a redirect and behind a redirect chain."""
    targets = [f"http://{h}:{PORT}/v.mp4" for h in LOOPBACK_HOSTS]
    targets += [f"http://{h}/latest/meta-data/" for h in OTHER_HOSTS]
    targets += [f"https://{h}:{PORT}/v.mp4" for h in ("127.0.0.1", "localhost", "[::ffff:7f00:1]")]
    targets += [f"http://{name}:{PORT}/v.mp4" for name in REBINDING]
    cells = [("source", t) for t in targets]
    cells += [("redirect", t) for t in [*targets, *SCHEMES, "//127.0.0.1:{port}/v.mp4"]]
    cells += [("chain", t) for t in targets]
    cells += [("source", s) for s in SCHEMES]
    return cells


CELLS = _cells()


def test_the_table_has_over_300_cells() -> None:
    assert len(CELLS) >= 300


# ----- the world outside the guard: resolver and network ------------------------------------------


class World:
    """The resolver and the network as the guard sees them, with a record of what was asked."""

    def __init__(self, real_getaddrinfo: Any, real_connect: Any) -> None:
        self.real_getaddrinfo = real_getaddrinfo
        self.real_connect = real_connect
        self.lookups: list[str] = []
        self.dialled: list[str] = []  # non-loopback addresses a socket tried to reach (refused)

    def getaddrinfo(
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ):
        name = host.decode() if isinstance(host, bytes) else str(host)
        if not name.isascii():
            name = name.encode("idna").decode()  # what the socket module does before asking
        self.lookups.append(name)
        try:
            return self.real_getaddrinfo(name, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        except socket.gaierror:
            pass
        key = name.lower().rstrip(".")
        if key in REBINDING:
            answers = [PUBLIC_V4] if self.lookups.count(name) % 2 == 1 else [REBINDING[key]]
        elif key == "localhost" or key.endswith(".localhost"):
            answers = ["127.0.0.1", "::1"]
        elif key in STATIC:
            answers = STATIC[key]
        else:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            info
            for a in answers
            for info in self.real_getaddrinfo(a, port, 0, type, proto, socket.AI_NUMERICHOST)
        ]

    def connect(self, sock: socket.socket, address: Any) -> None:
        host = str(address[0]).split("%", 1)[0]
        if host in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
            return self.real_connect(sock, address)
        self.dialled.append(host)
        raise ConnectionRefusedError(111, f"test network: {host} is not reachable from tests")


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    w = World(socket.getaddrinfo, socket.socket.connect)
    monkeypatch.setattr(socket, "getaddrinfo", w.getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", lambda sock, address: w.connect(sock, address))
    return w


@pytest.fixture(scope="module")
def internal() -> Iterator[HTTPServer]:
    """The worker's internal network: answers anything with a video, so any leak is a 200."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request(re.compile(".*")).respond_with_data(b"internal" * 100, content_type="video/mp4")
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture(scope="module")
def redirector() -> Iterator[HTTPServer]:
    """The trusted origin: ``/r/<n>`` redirects to cell n's target, ``/c/<n>`` to ``/r/<n>``."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


def _run(url: str, dest: Path, conn_id: str) -> BaseException:
    op = ModelsLabStoreVideosOperator(
        task_id=f"hostile_{uuid.uuid4().hex[:6]}",
        urls=[url],
        destination=f"file://{dest}",
        modelslab_conn_id=conn_id,
        download_attempts=1,
        http_timeout=3,
    )
    from airflow.sdk.execution_time.context import OutletEventAccessors

    with pytest.raises(AirflowException) as info:
        op.execute({"ti": None, "outlet_events": OutletEventAccessors()})
    return info.value


@pytest.mark.parametrize(("how", "template"), CELLS, ids=[f"{i}-{c[0]}" for i, c in enumerate(CELLS)])
def test_a_hostile_url_is_refused(
    how: str,
    template: str,
    world: World,
    internal: HTTPServer,
    redirector: HTTPServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = template.replace(PORT, str(internal.port))
    conn = {"conn_type": "modelslab", "password": "sk-hostile-table", "host": redirector.url_for("/")}
    monkeypatch.setenv("AIRFLOW_CONN_MODELSLAB_HOSTILE", json.dumps(conn))
    redirector.clear()
    redirector.expect_request("/r/0").respond_with_response(
        Response(status=302, headers={"Location": target, "Content-Length": "0"})
    )
    redirector.expect_request("/c/0").respond_with_response(
        Response(status=307, headers={"Location": "/r/0", "Content-Length": "0"})
    )
    source = {"source": target, "redirect": redirector.url_for("/r/0"), "chain": redirector.url_for("/c/0")}[
        how
    ]
    before = len(internal.log)

    error = _run(source, tmp_path / "v", "modelslab_hostile")

    assert len(internal.log) == before, f"the internal server received {internal.log[before:]}"
    assert not (tmp_path / "v").exists() or list((tmp_path / "v").iterdir()) == []
    host = re.sub(r"^[a-z]+://([^/@]*@)?", "", target).split("/", 1)[0].rsplit(":", 1)[0].lower()
    if host.rstrip(".") in REBINDING:
        # pinned to the first, public answer: the only address dialled; the private one never asked
        assert world.dialled == [PUBLIC_V4], world.dialled
        assert "ConnectionError" in str(error), str(error)
    else:
        assert isinstance(error, AirflowFailException), f"not refused: {error}"
        assert world.dialled == [], f"dialled {world.dialled}"
        assert re.search(
            r"Refused|not an http\(s\) URL|only http and https|only http\(s\) URLs|is not a URL|InvalidURL",
            str(error),
        ), str(error)


def test_the_alternating_resolver_is_asked_once_per_hop(
    world: World, internal: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What makes the rebinding cells pass: one lookup per hop, and the connection goes to its answer."""
    conn = {"conn_type": "modelslab", "password": "sk-hostile-table", "host": "http://127.0.0.1:9"}
    monkeypatch.setenv("AIRFLOW_CONN_MODELSLAB_HOSTILE", json.dumps(conn))
    url = f"http://rebind.example:{internal.port}/v.mp4"
    first = _run(url, tmp_path / "v", "modelslab_hostile")  # answered public: dialled, unreachable
    second = _run(url, tmp_path / "v", "modelslab_hostile")  # answered private: refused
    assert world.lookups.count("rebind.example") == 2
    assert world.dialled == [PUBLIC_V4]
    assert not isinstance(first, AirflowFailException)
    assert isinstance(second, AirflowFailException)
    assert "is at 127.0.0.1, a loopback address" in str(second)
    assert internal.log == []
