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
                "python-modules": ["modelslab_provider.triggers.video", "modelslab_provider.triggers.batch"],
            }
        ],
        "extra-links": ["modelslab_provider.operators.video.ModelsLabVideoLink"],
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
