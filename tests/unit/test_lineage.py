"""OpenLineage naming for the http(s) URLs the operators report to Airflow's hook lineage collector."""

from __future__ import annotations

import pytest

from modelslab_provider import lineage


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://pub.r2.dev/video_generations/a.mp4", ("https://pub.r2.dev", "/video_generations/a.mp4")),
        ("http://127.0.0.1:8765/files/a.mp4", ("http://127.0.0.1:8765", "/files/a.mp4")),
        ("HTTPS://CDN.Example/x", ("https://cdn.example", "/x")),
        ("https://user@cdn.example", ("https://cdn.example", "/")),
    ],
)
def test_http_dataset_names(uri: str, expected: tuple[str, str]) -> None:
    assert lineage.http_dataset_name(uri) == expected


def test_airflow_registers_the_converter_for_http_and_https() -> None:
    """Airflow's providers manager picks the converter up from the provider info (what the
    OpenLineage provider looks up); without it OpenLineage drops http(s) assets."""
    from airflow.providers_manager import ProvidersManager

    converters = ProvidersManager().asset_to_openlineage_converters
    assert converters["http"] is lineage.http_asset_to_openlineage
    assert converters["https"] is lineage.http_asset_to_openlineage
    # the URIs keep normalising to themselves (a no-op handler), so OpenLineage can convert them
    from airflow.sdk import Asset

    assert Asset(uri="https://cdn.example/a.mp4").normalized_uri == "https://cdn.example/a.mp4"
