"""The ``modelslab`` connection through Airflow's own CLI: env-var connections (JSON and URI) are
tested with ``airflow connections test`` (the hook's ``test_connection``), and the provider is listed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from urllib.parse import quote

from modelslab_provider import __version__
from modelslab_provider.simulator import Simulator
from tests.integration.airflow_run import AIRFLOW, CANARY_KEY, airflow_env


def airflow(home: Path, *args: str, connection: str | None = None) -> str:
    env = airflow_env(home, None, AIRFLOW__CORE__TEST_CONNECTION="Enabled")
    if connection is not None:
        env["AIRFLOW_CONN_MODELSLAB_DEFAULT"] = connection
    proc = subprocess.run(
        [AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=120, check=False, cwd=home
    )
    return proc.stdout + proc.stderr


def wallet_calls(sim: Simulator) -> list[dict]:
    return [r for r in sim.requests() if r["path"] == "/api/wallet_balance"]


def test_connections_test_with_a_json_connection(sim: Simulator, tmp_path: Path) -> None:
    before = len(wallet_calls(sim))
    conn = json.dumps({"conn_type": "modelslab", "password": CANARY_KEY, "host": sim.url})
    output = airflow(tmp_path, "connections", "test", "modelslab_default", connection=conn)
    assert "Connection success!" in output, output[-3000:]
    # Airflow's CLI prints only the verdict on success; the balance is shown by the UI's Test
    # button (README, issue 17). If a new Airflow prints it, the README should say so.
    assert "wallet balance" not in output, output[-3000:]
    assert CANARY_KEY not in output
    calls = wallet_calls(sim)[before:]
    assert len(calls) == 1
    assert calls[0]["method"] == "POST"
    assert calls[0]["key_present"]
    assert not calls[0]["key_in_headers"]


def test_connections_test_with_a_uri_connection_and_a_refused_key(sim: Simulator, tmp_path: Path) -> None:
    bad_key = "invalid-key-7f3c/9d1e+5b2a"
    uri = f"modelslab://:{quote(bad_key, safe='')}@{quote(sim.url, safe='')}"
    output = airflow(tmp_path, "connections", "test", "modelslab_default", connection=uri)
    assert "Connection failed!" in output, output[-3000:]
    # the same wording as the UI's Test button: no connection id, the address tested
    assert (
        "refused the API key: Invalid API key. Check the API Key (password field) of this connection."
        in output
    )
    assert f"Tested {sim.url}." in output
    assert bad_key not in output
    assert quote(bad_key, safe="") not in output


def test_connections_test_refuses_plain_http_to_another_machine(tmp_path: Path) -> None:
    """Issue 11 item 10: nothing is sent, and the message names the field and the opt-in extra."""
    conn = json.dumps({"conn_type": "modelslab", "password": CANARY_KEY, "host": "http://sim.invalid:8765"})
    output = airflow(tmp_path, "connections", "test", "modelslab_default", connection=conn)
    assert "Connection failed!" in output, output[-3000:]
    assert "unencrypted" in output
    assert "Base URL (host)" in output
    assert "allow_plain_http" in output
    assert CANARY_KEY not in output


def test_providers_get_lists_the_provider(tmp_path: Path) -> None:
    output = airflow(tmp_path, "providers", "get", "airflow-provider-modelslab")
    assert "airflow-provider-modelslab" in output, output[-3000:]
    assert __version__ in output
