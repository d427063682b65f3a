"""modelslab_provider.download on its own: no Airflow needed to copy a file or to refuse one.

The store operator's behaviour is covered in test_storage.py; here the package is used the way
any other caller would, in a subprocess where importing Airflow fails, so a stray Airflow import
in the copy path shows up as a failing test rather than as a hidden dependency. The server is a
real one on 127.0.0.1 (pytest-httpserver) run by the test itself.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from pytest_httpserver import HTTPServer

from tests.unit.fresh_import import loaded_after_import

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoAirflow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "airflow" or name.startswith("airflow."):
                raise ImportError("airflow is blocked in this test")
            return None

    sys.meta_path.insert(0, NoAirflow())

    from upath import UPath

    from modelslab_provider.download import (
        Copier, CopyLimits, DownloadGaveUp, DownloadRefused, HostGuard,
    )
    from modelslab_provider.client.policy import RetryPolicy

    BODY = b"video" * 1000
    base = sys.argv[2]
    folder = UPath(sys.argv[1])
    retry = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.01)

    with Copier(folder, request_id="42", retry=retry, guard=HostGuard(allow_private=True)) as copier:
        stored = copier.copy(base + "/v.mp4?sig=x", 0)
    print("stored", stored.to_dict()["source"] == base + "/v.mp4", stored.bytes == len(BODY),
          (folder / "42_0.mp4").read_bytes() == BODY)

    with Copier(folder, guard=HostGuard()) as copier:
        try:
            copier.copy(base + "/v.mp4", 0)
        except DownloadRefused as exc:
            print("refused", exc.final, "loopback" in str(exc))

    with Copier(folder, request_id="43", retry=retry, guard=HostGuard(allow_private=True),
                limits=CopyLimits(file_timeout=None)) as copier:
        try:
            copier.copy(base + "/gone.mp4", 0)
        except DownloadGaveUp as exc:
            print("gave_up", exc.final, "after 2 attempt(s)" in str(exc))
    print("airflow_loaded", any(m == "airflow" or m.startswith("airflow.") for m in sys.modules))
    """
)


def test_copies_and_refuses_without_airflow(tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v.mp4").respond_with_data(b"video" * 1000)
    httpserver.expect_request("/gone.mp4").respond_with_data(b"no", status=404)
    base = httpserver.url_for("/").rstrip("/")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, f"file://{tmp_path}", base],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "stored True True True",
        "refused True True",
        "gave_up False True",
        "airflow_loaded False",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["42_0.mp4"]  # no partial or refused file


def test_importing_the_package_pulls_in_neither_airflow_nor_an_http_library() -> None:
    assert loaded_after_import("modelslab_provider.download", ("airflow", "requests", "aiohttp")) == []
