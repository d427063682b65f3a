"""The documentation's examples that are not DAGs: each one is run here, so none is pasted untested.

- docs/snippets/connections.sh (the connection page's environment variables): every export is
  loaded as Airflow loads ``AIRFLOW_CONN_*`` and gives the address and options its ``# ->`` line says;
- README.md's DAG builds, with the operator classes and wiring it shows.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from modelslab_provider.hooks.modelslab import ModelsLabHook

REPO = Path(__file__).resolve().parents[2]
CONNECTIONS = REPO / "docs" / "snippets" / "connections.sh"
EXPORT = re.compile(r"^export (AIRFLOW_CONN_\w+)=(.+)$")
EXPECT = re.compile(r"^# -> (\S+) timeout=(\S+) max_retries=(\d+)$")


def connection_examples() -> list[tuple[str, str, str, float, int]]:
    """(variable, value, base URL, timeout, max_retries) for each export and the ``# ->`` line after it."""
    examples = []
    lines = CONNECTIONS.read_text().splitlines()
    for i, line in enumerate(lines):
        if match := EXPORT.match(line):
            expected = EXPECT.match(lines[i + 1])
            assert expected, f"connections.sh line {i + 2}: every export is followed by its '# ->' line"
            [value] = shlex.split(match.group(2))
            url, timeout, retries = expected.groups()
            examples.append((match.group(1), value, url, float(timeout), int(retries)))
    return examples


def test_the_snippet_has_json_and_uri_examples() -> None:
    values = [value for _, value, *_ in connection_examples()]
    assert len(values) == 6
    assert sum(v.startswith("{") for v in values) == 3
    assert sum(v.startswith("modelslab://") for v in values) == 3


@pytest.mark.parametrize(("variable", "value", "url", "timeout", "retries"), connection_examples())
def test_each_documented_connection_loads_as_documented(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, url: str, timeout: float, retries: int
) -> None:
    monkeypatch.setenv(variable, value)
    conn_id = variable.removeprefix("AIRFLOW_CONN_").lower()
    settings = ModelsLabHook(conn_id).get_client_settings()
    assert (settings.base_url, settings.timeout, settings.max_retries) == (url, timeout, retries)
    if "sk%2Fab%2Bc%3D" in value:  # the URL-encoded key arrives decoded
        assert settings.api_key == "sk/ab+c="


def readme_dag() -> str:
    """The one Python block of README.md (the landing page cannot include a file, so it is checked here)."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert len(blocks) == 1, "README.md keeps exactly one DAG"
    return blocks[0]


def test_the_readme_dag_builds_with_the_classes_and_wiring_it_shows(tmp_path: Path) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.3
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator
    from modelslab_provider.operators.video import ModelsLabTextToVideoOperator

    (tmp_path / "readme_dag.py").write_text(readme_dag())
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    dag = bag.dags["fox_video"]
    generate, store = dag.get_task("generate"), dag.get_task("store")
    assert type(generate) is ModelsLabTextToVideoOperator
    assert type(store) is ModelsLabStoreVideosOperator
    assert generate.deferrable is True
    assert store.upstream_task_ids == {"generate"}  # urls=generate.output sets the dependency
    assert store.destination.startswith("file:///")


def makefile_airflow_version() -> str:
    match = re.search(r"^AIRFLOW_VERSION \?= (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert match
    return match.group(1)


def test_the_install_and_image_snippets_pin_the_airflow_release_the_tests_run() -> None:
    version = makefile_airflow_version()
    install = (REPO / "docs" / "snippets" / "install.sh").read_text()
    assert f"\nAIRFLOW_VERSION={version}\n" in install
    assert "pip install airflow-provider-modelslab" in install
    dockerfile = (REPO / "docs" / "snippets" / "Dockerfile").read_text()
    assert f"FROM apache/airflow:{version}-python3.11\n" in dockerfile  # the image's Python, named
    assert f'"apache-airflow=={version}"' in dockerfile
    assert f"constraints-{version}/constraints-3.11.txt" in dockerfile  # constraints of that Python


def test_the_helm_values_snippet_parses_with_two_triggerers() -> None:
    import yaml

    values = yaml.safe_load((REPO / "docs" / "snippets" / "values.yaml").read_text())
    assert values["triggerer"]["replicas"] == 2
    assert values["executor"] == "CeleryExecutor"
    assert values["images"]["airflow"]["tag"].startswith(makefile_airflow_version())


def test_no_page_pastes_python_code() -> None:
    """Python on the docs pages comes from files the tests run (``literalinclude``), never pasted."""
    pasted = {
        page.name: len(re.findall(r"^```(?:python|py|pycon)\s*$", page.read_text(), re.M))
        for page in sorted((REPO / "docs").glob("*.md"))
    }
    assert {name: n for name, n in pasted.items() if n} == {}
