"""ModelsLabStoreVideosOperator against the simulator's /files and a tiny scripted HTTP server.

Files land in ``file://`` tmp folders (and an in-memory fsspec store standing in for an object
store); every failure case also checks that nothing, not even a partial file, is left behind.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, Asset
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from modelslab_provider import lineage
from modelslab_provider.operators.storage import (
    ModelsLabStoreVideosOperator,
    check_destination_syntax,
    file_name,
    source_urls,
)
from modelslab_provider.simulator import Simulator
from tests.unit.fresh_import import loaded_after_import

BODY = bytes(range(256)) * 40  # 10 240 bytes


# ----- a scripted HTTP server (pytest-httpserver) ----------------------------------------------


class Script:
    """Per-path behaviour of a real local HTTP server, and a log of what was asked for."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.hits: dict[str, int] = {}
        self.headers: list[dict[str, str]] = []
        self.halfway = threading.Event()
        self.release = threading.Event()
        self.drip_finished = threading.Event()

    def __call__(self, request: Request) -> Response:
        path = request.path
        hit = self.hits[path] = self.hits.get(path, 0) + 1
        self.headers.append(dict(request.headers))
        if path in ("/ok.mp4", "/noext"):
            return Response(BODY, content_type="video/mp4")
        if path == "/flaky.mp4":
            return (
                Response(b"<html>busy</html>", 503, content_type="text/html") if hit <= 2 else Response(BODY)
            )
        if path == "/ratelimited.mp4":
            return Response(b"slow down", 429, {"Retry-After": "0"}) if hit == 1 else Response(BODY)
        if path == "/short.mp4":  # promises the whole body, sends half, closes
            return self._stream([BODY[: len(BODY) // 2]], length=len(BODY))
        if path == "/big.mp4":
            return Response(BODY)
        if path == "/chunked.mp4":  # no Content-Length: sent chunked
            return Response(BODY[:1000] for _ in range(10))
        if path == "/pause.mp4":
            return self._stream(self._paused(), length=len(BODY))
        if path == "/drip.mp4":  # a body that keeps trickling in: no single read ever waits long
            return self._stream(self._drip(), length=len(BODY))
        if path in ("/a/abc.mp4", "/b/abc.mp4"):
            return Response(path.encode() * 100, content_type="video/mp4")
        redirects = {
            "/to-file": (302, "file:///etc/hostname"),
            "/to-ok": (302, "/ok.mp4"),
            "/loop": (302, "/loop"),
            "/to-metadata": (302, "http://169.254.169.254/latest/meta-data/"),
            "/to-localhost": (307, f"http://localhost:{self.port}/ok.mp4"),
        }
        if path in redirects:
            status, location = redirects[path]
            return Response(b"", status, {"Location": location})
        if path == "/bad.mp4":
            return Response(b"bad request", 400)
        return Response(b"not found", 404)

    @staticmethod
    def _stream(body: Iterable[bytes], length: int) -> Response:
        headers = {"Content-Length": str(length), "Connection": "close"}
        return Response(body, 200, headers, direct_passthrough=True)

    def _paused(self) -> Iterator[bytes]:
        yield BODY[:5000]
        self.halfway.set()
        self.release.wait(10)
        yield BODY[5000:]

    def _drip(self) -> Iterator[bytes]:
        for start in range(0, len(BODY), 100):
            if self.release.is_set():
                return
            yield BODY[start : start + 100]
            time.sleep(0.05)
        self.drip_finished.set()


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    httpd = HTTPServer(host="127.0.0.1", port=0)
    httpd.start()
    script = Script(httpd.port)
    httpd.expect_request(re.compile(".*")).respond_with_handler(script)
    try:
        yield f"http://127.0.0.1:{httpd.port}", script
    finally:
        script.release.set()
        httpd.clear()
        httpd.stop()


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


def trust(monkeypatch: pytest.MonkeyPatch, base: str) -> str:
    """A ModelsLab connection whose Base URL is ``base`` (as the simulator's is); returns its id."""
    conn = {"conn_type": "modelslab", "password": "sk-unit-storage", "host": base}
    monkeypatch.setenv("AIRFLOW_CONN_MODELSLAB_STORE_TRUST", json.dumps(conn))
    return "modelslab_store_trust"


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
    assert loaded_after_import("modelslab_provider.operators.storage", ("requests", "aiohttp")) == []


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


# ----- 11.15a: one file per source ---------------------------------------------------------------


def test_sources_with_the_same_file_name_get_their_own_files(
    server: tuple[str, Script], tmp_path: Path
) -> None:
    base, _ = server
    dest = tmp_path / "v"
    a, b = f"{base}/a/abc.mp4", f"{base}/b/abc.mp4"
    other_host = b.replace("127.0.0.1", "localhost")  # same path on another host name
    uris = store([a, b, other_host, a], f"file://{dest}/").execute(make_context())
    assert len(uris) == len(set(uris)) == 3  # the repeated URL is copied once
    assert sorted(listing(dest)) == sorted(u.rsplit("/", 1)[-1] for u in uris)
    assert (dest / uris[0].rsplit("/", 1)[-1]).read_bytes() == b"/a/abc.mp4" * 100
    assert (dest / uris[1].rsplit("/", 1)[-1]).read_bytes() == b"/b/abc.mp4" * 100
    # names are deterministic: a retry of the task overwrites the same files
    assert store([a, b, other_host], f"file://{dest}/").execute(make_context()) == uris
    assert len(listing(dest)) == 3


def test_an_output_and_its_proxy_link_are_two_files(sim: Simulator, tmp_path: Path) -> None:
    job = submit(sim, "[sim:instant=1]")
    urls = [*job["output"], *job["proxy_links"]]
    assert {u.rsplit("/", 1)[-1] for u in urls} == {urls[0].rsplit("/", 1)[-1]}  # same file name
    dest = tmp_path / "v"
    uris = store(urls, f"file://{dest}/").execute(make_context())
    assert len(uris) == len(set(uris)) == len(urls) == 2
    assert len(listing(dest)) == 2


# ----- 11.15c: an overall time limit per file ------------------------------------------------------


def test_a_trickling_body_is_cut_off_at_file_timeout(server: tuple[str, Script], tmp_path: Path) -> None:
    base, script = server
    op = store([f"{base}/drip.mp4"], f"file://{tmp_path}/v", file_timeout=1.0, http_timeout=5)
    with pytest.raises(AirflowException, match=r"did not finish within file_timeout=1 s") as info:
        op.execute(make_context())
    # the body takes over 5 s to send and no single read waits long: only the overall limit ends it
    assert not script.drip_finished.is_set()
    assert not isinstance(info.value, AirflowFailException)  # the task's retries apply
    assert listing(tmp_path / "v") == []


def test_file_timeout_covers_the_retries(server: tuple[str, Script], tmp_path: Path) -> None:
    base, script = server
    op = store(
        [f"{base}/never-there.mp4"],
        f"file://{tmp_path}/v",
        file_timeout=0.5,
        download_attempts=50,
        retry_initial_delay=0.2,
        retry_max_delay=0.2,
    )
    with pytest.raises(
        AirflowException, match=r"file_timeout=0\.5 s \(after \d+ attempt\(s\), the last: HTTP 404"
    ):
        op.execute(make_context())
    assert script.hits["/never-there.mp4"] < 50


def test_file_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="file_timeout"):
        store(["https://x.example/a.mp4"], "file:///tmp/v", file_timeout=0)


# ----- lineage ----------------------------------------------------------------------------------


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Airflow's real hook lineage collector (what a registered lineage reader switches on)."""
    try:
        from airflow.sdk.lineage import HookLineageCollector
    except ImportError:  # Airflow 3.1 keeps the collector in core
        from airflow.lineage.hook import HookLineageCollector  # type: ignore[no-redef]

    real = HookLineageCollector()
    monkeypatch.setattr(lineage, "_collector", lambda: real)
    return real


def test_copies_are_reported_to_hook_lineage(
    server: tuple[str, Script], tmp_path: Path, collector: Any
) -> None:
    base, _ = server
    uris = store(
        [f"{base}/ok.mp4?token=secret", f"{base}/noext"], f"file://{tmp_path}/v", request_id="7"
    ).execute(make_context())
    collected = collector.collected_assets
    assert [i.asset.uri for i in collected.inputs] == [f"{base}/ok.mp4", f"{base}/noext"]
    assert [o.asset.uri for o in collected.outputs] == uris


def test_a_finished_generation_is_reported_to_hook_lineage(
    collector: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelslab_provider.hooks.modelslab import ModelsLabHook

    conn_id = trust(monkeypatch, "http://127.0.0.1:9")
    lineage.report_video_job(
        ModelsLabHook(modelslab_conn_id=conn_id),
        endpoint="text2video",
        request_id=155262350,
        urls=["https://pub.r2.dev/video_generations/a.mp4?sig=x"],
    )
    collected = collector.collected_assets
    assert [(i.asset.uri, i.asset.extra) for i in collected.inputs] == [
        ("http://127.0.0.1:9/api/v6/video/text2video", {"request_id": "155262350"})
    ]
    assert [o.asset.uri for o in collected.outputs] == ["https://pub.r2.dev/video_generations/a.mp4"]


def test_lineage_reporting_never_fails_the_task(
    server: tuple[str, Script], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = server

    def broken() -> Any:
        raise RuntimeError("collector unavailable")

    monkeypatch.setattr(lineage, "_collector", broken)
    assert len(store([f"{base}/ok.mp4"], f"file://{tmp_path}/v").execute(make_context())) == 1
