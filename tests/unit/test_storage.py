"""ModelsLabStoreVideosOperator against the simulator's /files and a tiny scripted HTTP server.

Files land in ``file://`` tmp folders (and an in-memory fsspec store standing in for an object
store); every failure case also checks that nothing, not even a partial file, is left behind.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, Asset

from modelslab_provider.operators.storage import (
    ModelsLabStoreVideosOperator,
    check_destination_syntax,
    file_name,
    source_urls,
)
from modelslab_provider.simulator import Simulator

BODY = bytes(range(256)) * 40  # 10 240 bytes


# ----- a scripted HTTP server --------------------------------------------------------------------


class Script:
    """Per-path behaviour and a log of what was asked for."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.headers: list[dict[str, str]] = []
        self.halfway = threading.Event()
        self.release = threading.Event()


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            headers = {"Content-Length": str(len(body)), **(headers or {})}
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            hit = script.hits[path] = script.hits.get(path, 0) + 1
            script.headers.append(dict(self.headers))
            if path == "/ok.mp4" or path == "/noext":
                self._send(200, BODY, {"Content-Type": "video/mp4"})
            elif path == "/flaky.mp4":
                if hit <= 2:
                    self._send(503, b"<html>busy</html>", {"Content-Type": "text/html"})
                else:
                    self._send(200, BODY)
            elif path == "/ratelimited.mp4":
                if hit == 1:
                    self._send(429, b"slow down", {"Retry-After": "0"})
                else:
                    self._send(200, BODY)
            elif path == "/short.mp4":
                # promises the whole body, sends half, closes
                self.send_response(200)
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY[: len(BODY) // 2])
                self.wfile.flush()
                self.close_connection = True
            elif path == "/big.mp4":
                self._send(200, BODY)
            elif path == "/chunked.mp4":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for _ in range(10):
                    piece = BODY[:1000]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            elif path == "/pause.mp4":
                self.send_response(200)
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY[:5000])
                self.wfile.flush()
                script.halfway.set()
                script.release.wait(10)
                self.wfile.write(BODY[5000:])
            elif path == "/to-file":
                self._send(302, b"", {"Location": "file:///etc/hostname"})
            elif path == "/bad.mp4":
                self._send(400, b"bad request")
            else:
                self._send(404, b"not found")

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        script.release.set()
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(port=0, duration=0.2) as simulator:
        yield simulator


# ----- helpers ---------------------------------------------------------------------------------


class FakeTI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def make_context() -> Any:
    """The two context entries the operator uses: ``ti`` (XCom push) and ``outlet_events``."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    return {"ti": FakeTI(), "outlet_events": OutletEventAccessors()}


def store(urls: Any, destination: str, **kwargs: Any) -> ModelsLabStoreVideosOperator:
    """The operator with fast retries; the test servers are on 127.0.0.1, so private hosts are allowed
    unless a test says otherwise (and no ModelsLab connection is trusted unless it names one)."""
    kwargs.setdefault("allow_private_hosts", True)
    kwargs.setdefault("modelslab_conn_id", None)
    kwargs.setdefault("retry_initial_delay", 0.05)
    kwargs.setdefault("retry_max_delay", 0.2)
    kwargs.setdefault("http_timeout", 5)
    return ModelsLabStoreVideosOperator(
        task_id=f"store_{uuid.uuid4().hex[:6]}", urls=urls, destination=destination, **kwargs
    )


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def submit(sim: Simulator, marker: str) -> dict[str, Any]:
    body = {"key": "sk-unit-storage", "model_id": "wan2.2", "prompt": f"a fox {marker}"}
    response = requests.post(f"{sim.url}/api/v6/video/text2video", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


# ----- pure helpers -----------------------------------------------------------------------------


def test_source_urls_accepts_lists_xcom_shapes_and_rendered_literals() -> None:
    a, b = "https://cdn.example/a.mp4", "http://cdn.example/b.mp4"
    assert source_urls([a, b]) == [a, b]
    assert source_urls(a) == [a]
    assert source_urls(str([a, b])) == [a, b]
    assert source_urls([[a], [b]]) == [a, b]  # a mapped upstream gives one list per map index
    assert source_urls((a,)) == [a]


@pytest.mark.parametrize(
    "bad",
    [
        ["https://cdn.example/a.mp4", "file:///etc/passwd"],
        "/etc/passwd",
        ["ftp://cdn.example/a.mp4"],
        ["https:///no-host.mp4"],
        [42],
        [],
        None,
        "[not a list",
    ],
)
def test_source_urls_refuses_anything_but_http_urls(bad: Any) -> None:
    with pytest.raises(AirflowFailException):
        source_urls(bad)


@pytest.mark.parametrize(
    "bad",
    ["", "videos/", "/tmp/videos", "https://example.com/up/", "file://relative/videos", "s3:/bucket"],
)
def test_destination_syntax_errors_say_what_to_write(bad: str) -> None:
    with pytest.raises(AirflowFailException, match="destination"):
        check_destination_syntax(bad)


def test_destination_syntax_accepts_storage_uris() -> None:
    for good in ("file:///data/videos/", "file://localhost/data/v", "s3://b/p/", "gs://b/p"):
        assert check_destination_syntax(good) == good


def test_literal_bad_destination_fails_at_parse_time_but_templates_wait() -> None:
    with pytest.raises(AirflowFailException):
        store(["https://x.example/a.mp4"], "videos/")
    store(["https://x.example/a.mp4"], "{{ params.destination }}")


def test_file_names_are_deterministic() -> None:
    url = "https://pub.r2.dev/video_generations/5f1c.mp4?sig=abc"
    assert file_name("155262350", 0, url, "video/mp4") == "155262350_0.mp4"
    assert file_name("155262350", 1, url, None) == "155262350_1.mp4"
    assert file_name(None, 0, url, None) == file_name(None, 3, url, None)
    assert file_name(None, 0, url, None).startswith("5f1c-")
    assert file_name(None, 0, url, None).endswith(".mp4")
    assert file_name("7", 0, "https://h.example/out", "video/mp4; charset=binary") == "7_0.mp4"
    assert file_name("7", 0, "https://h.example/out.GIF", None) == "7_0.gif"
    assert file_name("7", 0, "https://h.example/out", None) == "7_0.bin"
    assert file_name("../../etc", 0, "https://h.example/a.mp4", None) == "etc_0.mp4"
    hashed = file_name(None, 0, "https://h.example/", None)
    assert hashed == file_name(None, 0, "https://h.example/", None)
    assert hashed.endswith(".bin")
    assert len(hashed) == 20


def test_importing_the_module_pulls_in_no_http_library() -> None:
    code = (
        "import sys, modelslab_provider.operators.storage; "
        "print('requests' in sys.modules, 'aiohttp' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ----- copies --------------------------------------------------------------------------------------


def test_copies_and_returns_uris_files_xcom_and_sends_no_credentials(
    server: tuple[str, Script], tmp_path: Path
) -> None:
    base, script = server
    dest = tmp_path / "videos"
    op = store([f"{base}/ok.mp4?token=secret", f"{base}/noext"], f"file://{dest}/", request_id=155262350)
    context = make_context()
    uris = op.execute(context)
    assert uris == [f"file://{dest}/155262350_0.mp4", f"file://{dest}/155262350_1.mp4"]
    assert listing(dest) == ["155262350_0.mp4", "155262350_1.mp4"]
    assert (dest / "155262350_0.mp4").read_bytes() == BODY
    files = context["ti"].pushed["files"]
    assert [f["bytes"] for f in files] == [len(BODY), len(BODY)]
    assert files[0]["source"] == f"{base}/ok.mp4"  # query strings stay out of XCom
    for headers in script.headers:
        assert not {"Authorization", "key", "Cookie"} & set(headers)
        assert headers["User-Agent"].startswith("airflow-provider-modelslab/")


def test_a_request_id_template_that_rendered_none_falls_back_to_url_names(
    server: tuple[str, Script], tmp_path: Path
) -> None:
    base, _ = server
    uris = store([f"{base}/ok.mp4"], f"file://{tmp_path}/v", request_id="None").execute(make_context())
    assert uris == [f"file://{tmp_path}/v/{file_name(None, 0, f'{base}/ok.mp4', None)}"]
    assert uris[0].startswith(f"file://{tmp_path}/v/ok-")


def test_a_rerun_overwrites_rather_than_duplicates(server: tuple[str, Script], tmp_path: Path) -> None:
    base, _ = server
    dest = tmp_path / "v"
    (dest).mkdir()
    (dest / "42_0.mp4").write_bytes(b"stale")
    for _ in range(2):
        store([f"{base}/ok.mp4"], f"file://{dest}", request_id="42").execute(make_context())
    assert listing(dest) == ["42_0.mp4"]
    assert (dest / "42_0.mp4").read_bytes() == BODY


def test_transient_statuses_and_429_are_retried(server: tuple[str, Script], tmp_path: Path) -> None:
    base, script = server
    dest = tmp_path / "v"
    uris = store([f"{base}/flaky.mp4", f"{base}/ratelimited.mp4"], f"file://{dest}", request_id="9").execute(
        make_context()
    )
    assert len(uris) == 2
    assert script.hits == {"/flaky.mp4": 3, "/ratelimited.mp4": 2}
    assert listing(dest) == ["9_0.mp4", "9_1.mp4"]


def test_early_404_after_success_is_waited_out(sim: Simulator, tmp_path: Path) -> None:
    job = submit(sim, "[sim:instant=1 file_delay=0.6]")
    assert job["status"] == "success"
    before = sim.stats()["file_requests"]
    dest = tmp_path / "v"
    op = store(job["output"], f"file://{dest}/", request_id=str(job["id"]), download_attempts=20)
    assert op.execute(make_context()) == [f"file://{dest}/{job['id']}_0.mp4"]
    assert sim.stats()["file_requests"] - before >= 2  # at least one 404 before the 200
    assert (dest / f"{job['id']}_0.mp4").stat().st_size > 0


def test_expired_url_fails_after_the_attempts_with_nothing_written(sim: Simulator, tmp_path: Path) -> None:
    job = submit(sim, "[sim:instant=1 file_ttl=0]")
    dest = tmp_path / "v"
    op = store(job["output"], f"file://{dest}/", request_id=str(job["id"]), download_attempts=3)
    with pytest.raises(AirflowException, match=r"after 3 attempt.*HTTP 404.*expire") as info:
        op.execute(make_context())
    assert not isinstance(info.value, AirflowFailException)  # an Airflow retry may still help
    assert listing(dest) == []


def test_short_body_is_retried_then_fails_without_partial_file(
    server: tuple[str, Script], tmp_path: Path
) -> None:
    base, script = server
    dest = tmp_path / "v"
    with pytest.raises(AirflowException, match="after 2 attempt"):
        store([f"{base}/short.mp4"], f"file://{dest}", request_id="1", download_attempts=2).execute(
            make_context()
        )
    assert script.hits["/short.mp4"] == 2
    assert listing(dest) == []


def test_max_bytes_is_checked_against_content_length_before_writing(
    server: tuple[str, Script], tmp_path: Path
) -> None:
    base, script = server
    dest = tmp_path / "v"
    with pytest.raises(AirflowFailException, match="max_bytes=1000; nothing was written"):
        store([f"{base}/big.mp4"], f"file://{dest}", max_bytes=1000).execute(make_context())
    assert script.hits["/big.mp4"] == 1  # no retry for a file that is simply too big
    assert listing(dest) == []


def test_max_bytes_is_enforced_while_streaming(server: tuple[str, Script], tmp_path: Path) -> None:
    base, _ = server
    dest = tmp_path / "v"
    with pytest.raises(AirflowFailException, match="partial copy was removed"):
        store([f"{base}/chunked.mp4"], f"file://{dest}", max_bytes=2500).execute(make_context())
    assert listing(dest) == []
    # without the limit the same chunked body (no Content-Length) is stored whole
    store([f"{base}/chunked.mp4"], f"file://{dest}", request_id="c").execute(make_context())
    assert (dest / "c_0.mp4").stat().st_size == 10_000


def test_final_name_never_holds_a_partial_file(server: tuple[str, Script], tmp_path: Path) -> None:
    base, script = server
    dest = tmp_path / "v"
    op = store([f"{base}/pause.mp4"], f"file://{dest}", request_id="p")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op.execute(make_context())
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert script.halfway.wait(10)
    # mid-download: only the hidden temporary file exists
    names = listing(dest)
    assert "p_0.mp4" not in names
    assert len(names) <= 1
    assert all(n.startswith(".p_0.mp4.") and n.endswith(".part") for n in names)
    script.release.set()
    worker.join(10)
    assert not errors
    assert listing(dest) == ["p_0.mp4"]
    assert (dest / "p_0.mp4").read_bytes() == BODY


@pytest.mark.parametrize(
    ("path", "status"), [("/bad.mp4", "HTTP 400"), ("/to-file", "redirects to a file: location")]
)
def test_hopeless_sources_fail_at_once(
    server: tuple[str, Script], tmp_path: Path, path: str, status: str
) -> None:
    base, script = server
    with pytest.raises(AirflowFailException, match=status):
        store([f"{base}{path}"], f"file://{tmp_path}/v").execute(make_context())
    assert script.hits[path] == 1
    assert listing(tmp_path / "v") == []


def test_a_smuggled_file_url_fails_before_anything_is_fetched(
    server: tuple[str, Script], tmp_path: Path
) -> None:
    base, script = server
    op = store([f"{base}/ok.mp4", "file:///etc/passwd"], f"file://{tmp_path}/v")
    with pytest.raises(AirflowFailException, match=r"urls\[1\].*not an http\(s\) URL"):
        op.execute(make_context())
    assert script.hits == {}
    assert listing(tmp_path / "v") == []


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ("bogus://bucket/videos/", "bogus"),
        ("s3://bucket/videos/", "apache-airflow-providers-amazon"),
        ("{{ params.d }}", "needs a scheme"),  # renders to something without a scheme
    ],
)
def test_unusable_destinations_fail_clearly_before_downloading(
    server: tuple[str, Script], destination: str, message: str
) -> None:
    base, script = server
    op = store([f"{base}/ok.mp4"], destination)
    if "{{" in destination:
        op.destination = "relative/videos"  # what the template rendered to
    with pytest.raises(AirflowFailException, match=message):
        op.execute(make_context())
    assert script.hits == {}


def test_object_store_gets_the_complete_object_or_nothing(server: tuple[str, Script]) -> None:
    from airflow.sdk.io.store import attach
    from fsspec.implementations.memory import MemoryFileSystem

    fs = MemoryFileSystem()
    attach("memory", fs=fs)
    bucket = f"bucket-{uuid.uuid4().hex[:8]}"
    base, _ = server
    uris = store([f"{base}/ok.mp4"], f"memory://{bucket}/videos/", request_id="5").execute(make_context())
    # memory://b/... or memory:///b/... depending on the universal-pathlib version
    assert uris[0].startswith("memory://")
    assert uris[0].endswith(f"{bucket}/videos/5_0.mp4")
    assert fs.cat(f"/{bucket}/videos/5_0.mp4") == BODY
    with pytest.raises(AirflowException):
        store(
            [f"{base}/short.mp4"], f"memory://{bucket}/videos/", request_id="6", download_attempts=1
        ).execute(make_context())
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.find(f"/{bucket}")) == ["5_0.mp4"]


def test_asset_outlet_carries_the_stored_uris(server: tuple[str, Script], tmp_path: Path) -> None:
    base, _ = server
    asset = Asset(f"file://{tmp_path}/assets")
    op = store([f"{base}/ok.mp4"], f"file://{tmp_path}/assets/", request_id="a", asset=asset, outlets=[])
    assert asset in op.outlets
    context = make_context()
    uris = op.execute(context)
    assert context["outlet_events"][asset].extra == {"uris": uris, "request_id": "a", "bytes": len(BODY)}
    by_name = store([f"{base}/ok.mp4"], f"file://{tmp_path}/x/", asset="modelslab_videos")
    assert [a.name for a in by_name.outlets] == ["modelslab_videos"]
