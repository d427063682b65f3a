"""VideoFetchSensor in one mode per DAG (poke, reschedule, deferrable) against the simulator.

One run covers every outcome: a job whose first fetches answer 502 with an HTML page before it
succeeds (``ok``), a job that fails (``failed``), and a job that never finishes, watched by a
sensor without and with ``soft_fail`` (``never``). ``check_ok`` checks the URLs arrive in XCom.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from modelslab_provider.sensors.video import VideoFetchSensor

SCENARIOS = {
    "ok": "duration=3 eta=2 fault=502 fault_on=1,2",
    "failed": "duration=1 outcome=failed messege=1",
    "never": "outcome=never",
}
FAST = {"min_interval": 0.5, "max_interval": 2.0, "interval": 0.5}
MODES = {
    "poke": {"mode": "poke", "deferrable": False},
    "reschedule": {"mode": "reschedule", "deferrable": False},
    "deferrable": {"deferrable": True},
}


@task
def submit() -> dict[str, int | str]:
    """Start one simulator job per scenario; ids come back as ints, as ModelsLab sends them."""
    from modelslab_provider.hooks.modelslab import ModelsLabHook

    hook = ModelsLabHook()
    ids: dict[str, int | str] = {}
    for name, scenario in SCENARIOS.items():
        result = hook.submit("text2video", {"prompt": f"a {name} cat [sim:{scenario}]"})
        assert result.request_id is not None
        ids[name] = int(result.request_id)
    return ids


@task
def check_ok(urls: list[str]) -> int:
    assert isinstance(urls, list), urls
    assert urls, urls
    assert all(isinstance(u, str) and u.startswith("http://127.0.0.1") for u in urls), urls
    return len(urls)


for mode_name, mode_kwargs in MODES.items():
    with DAG(
        dag_id=f"sensor_modes_{mode_name}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        render_template_as_native_obj=True,
        tags=["test"],
    ):
        ids = submit()
        common = {"poke_interval": 1, "poll_policy": FAST, **mode_kwargs}
        # native rendering keeps the id an int here; the others are rendered as strings
        wait_ok = VideoFetchSensor(
            task_id="wait_ok", request_id="{{ ti.xcom_pull('submit')['ok'] }}", timeout=40, **common
        )
        wait_failed = VideoFetchSensor(
            task_id="wait_failed",
            request_id="{{ ti.xcom_pull('submit')['failed'] | string }}",
            timeout=40,
            **common,
        )
        wait_never = VideoFetchSensor(
            task_id="wait_never",
            request_id="{{ ti.xcom_pull('submit')['never'] | string }}",
            timeout=3,
            **common,
        )
        wait_never_soft = VideoFetchSensor(
            task_id="wait_never_soft",
            request_id="{{ ti.xcom_pull('submit')['never'] | string }}",
            timeout=3,
            soft_fail=True,
            **common,
        )
        ids >> [wait_ok, wait_failed, wait_never, wait_never_soft]
        check_ok(wait_ok.output)
