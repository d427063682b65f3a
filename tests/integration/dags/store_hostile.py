"""The store operator against hostile sources in a real run (tests/integration/test_store_hostile.py).

``pre_execute`` replaces the resolver and the network at the socket boundary in the task's own
process, never the guard: names under ``.rebind.test`` answer a public address first and
127.0.0.1 (the internal server) on the next lookup; the public address is never really dialled.
"""

from __future__ import annotations

import socket
from typing import Any

import pendulum
from airflow.sdk import DAG

from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator

PUBLIC = "93.184.216.34"


def rebinding_resolver(context: Any) -> None:
    """Install the alternating resolver and the refusing network once per process."""
    if getattr(socket, "_store_hostile_shim", False):
        return
    real_lookup, real_connect = socket.getaddrinfo, socket.socket.connect
    lookups: dict[str, int] = {}

    def lookup(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.endswith(".rebind.test"):
            if name.startswith("unresolvable."):
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            count = lookups[name] = lookups.get(name, 0) + 1
            print(f"resolver: {name} lookup {count}")
            return real_lookup(PUBLIC if count % 2 else "127.0.0.1", port, *args, **kwargs)
        return real_lookup(host, port, *args, **kwargs)

    def connect(sock: socket.socket, address: Any) -> None:
        if str(address[0]) == PUBLIC:
            raise ConnectionRefusedError(111, "the test's public address is never dialled")
        return real_connect(sock, address)

    socket.getaddrinfo = lookup  # type: ignore[assignment]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket._store_hostile_shim = True  # type: ignore[attr-defined]


with DAG(
    dag_id="store_hostile",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"port": 0, "destination": "file:///tmp/store_hostile/"},
    tags=["test"],
):
    sources = {
        "rebinding": "http://cdn.rebind.test:{{ params.port }}/v.mp4",
        "rebinding_redirect": "http://127.0.0.1:{{ params.port }}/to-rebind",
        "nat64": "http://[64:ff9b::7f00:1]:{{ params.port }}/v.mp4",
        "behind_proxy": "http://unresolvable.rebind.test/v.mp4",
        "allowed": "http://127.0.0.1:{{ params.port }}/v.mp4",
    }
    for task_id, url in sources.items():
        ModelsLabStoreVideosOperator(
            task_id=task_id,
            urls=[url],
            destination="{{ params.destination }}" + task_id + "/",
            allow_private_hosts=task_id == "allowed",
            # the redirecting source is the trusted ModelsLab origin; its target is not
            modelslab_conn_id="modelslab_default" if task_id == "rebinding_redirect" else None,
            download_attempts=1,
            retries=0,
            pre_execute=rebinding_resolver,
        )
