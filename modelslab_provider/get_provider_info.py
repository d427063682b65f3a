"""Provider metadata for Airflow's provider discovery (entry point ``apache_airflow_provider``).

Kept free of heavy imports: the API server reads it without importing the hook.
"""

from __future__ import annotations

from typing import Any

from modelslab_provider import __version__
from modelslab_provider.connection_form import CONN_FIELDS, UI_FIELD_BEHAVIOUR


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-modelslab",
        "name": "ModelsLab",
        "description": "Generate videos with the ModelsLab API and wait for them without holding a worker.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "ModelsLab",
                "external-doc-url": "https://docs.modelslab.com/video-api/overview",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": "ModelsLab", "python-modules": ["modelslab_provider.hooks.modelslab"]}
        ],
        "operators": [
            {
                "integration-name": "ModelsLab",
                "python-modules": [
                    "modelslab_provider.operators.video",
                    "modelslab_provider.operators.storage",
                    "modelslab_provider.operators.batch",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "ModelsLab", "python-modules": ["modelslab_provider.sensors.video"]}
        ],
        "triggers": [
            {
                "integration-name": "ModelsLab",
                "python-modules": ["modelslab_provider.triggers.video"],
            }
        ],
        "extra-links": ["modelslab_provider.operators.video.ModelsLabVideoLink"],
        # lets the OpenLineage provider turn the http(s) URLs the operators report to Airflow's
        # hook lineage collector into datasets (it drops assets of schemes nobody registered)
        "asset-uris": [
            {
                "schemes": ["http", "https"],
                "handler": None,
                "to_openlineage_converter": "modelslab_provider.lineage.http_asset_to_openlineage",
            }
        ],
        "connection-types": [
            {
                "connection-type": "modelslab",
                "hook-class-name": "modelslab_provider.hooks.modelslab.ModelsLabHook",
                "hook-name": "ModelsLab",
                "ui-field-behaviour": {
                    "hidden-fields": UI_FIELD_BEHAVIOUR["hidden_fields"],
                    "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
                    "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
                },
                "conn-fields": CONN_FIELDS,
            }
        ],
    }
