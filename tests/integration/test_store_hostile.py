"""Hostile sources in a real ``airflow dags test`` run: the internal server receives nothing.

The DAG (``dags/store_hostile.py``) replaces the resolver at ``socket.getaddrinfo`` in the task
process: a ``.rebind.test`` name answers a public address on the first lookup and 127.0.0.1 on
the next, the repro of the review that found the check-then-connect gap. The internal server is a
real one on 127.0.0.1; a proxy variable points at it too, and must be ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tests.integration.airflow_run import TEST_DAGS, run_dag_test


@pytest.fixture
def internal() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/to-rebind").respond_with_response(
        Response(status=302, headers={"Location": f"http://cdn-hop.rebind.test:{server.port}/v.mp4"})
    )
    server.expect_request("/v.mp4").respond_with_data(b"internal" * 500, content_type="video/mp4")
    server.start()
    yield server
    server.clear()
    server.stop()


def test_hostile_sources_reach_nothing_in_a_real_run(
    airflow_home: Path, tmp_path: Path, internal: HTTPServer
) -> None:
    base = f"http://127.0.0.1:{internal.port}"
    result = run_dag_test(
        airflow_home,
        TEST_DAGS / "store_hostile.py",
        "store_hostile",
        sim_url=None,
        conf={"port": internal.port, "destination": f"file://{tmp_path}/"},
        env={
            "HTTP_PROXY": base,
            "http_proxy": base,
            "AIRFLOW_CONN_MODELSLAB_DEFAULT": json.dumps(
                {"conn_type": "modelslab", "password": "x", "host": base}
            ),
        },
    )
    assert result.states == {
        "rebinding": "failed",
        "rebinding_redirect": "failed",
        "nat64": "failed",
        "behind_proxy": "failed",
        "allowed": "success",
    }, result.output[-6000:]
    asked = [request.path for request, _ in internal.log]
    # the trusted origin's redirect and the allowed copy; nothing else reached the internal server
    assert sorted(asked) == ["/to-rebind", "/v.mp4"], asked
    assert [p.parent.name for p in tmp_path.rglob("*") if p.is_file()] == ["allowed"]
    out = result.output
    assert "resolver: cdn.rebind.test lookup 1" in out
    assert "resolver: cdn.rebind.test lookup 2" not in out  # one lookup: the request went to its answer
    assert "loopback (NAT64 form of 127.0.0.1)" in out
    assert "could not resolve unresolvable.rebind.test" in out  # the proxy variable was ignored
    assert "directly, to checked addresses only (proxy environment variables are ignored)" in out
