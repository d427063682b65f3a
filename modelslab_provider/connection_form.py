"""The ``modelslab`` connection form, declared once.

``get_provider_info`` publishes it as ``conn-fields`` / ``ui-field-behaviour`` (read by the
Airflow 3.2+ UI without importing the hook) and the hook's legacy classmethods (read by 3.1)
derive their widgets from the same dicts. No Airflow import here: provider discovery stays cheap.
"""

from __future__ import annotations

from typing import Any

from modelslab_provider.client.core import DEFAULT_BASE_URL, DEFAULT_TIMEOUT

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": {
        "label": "Request timeout (seconds)",
        "description": "How long one HTTP call to ModelsLab may take before it is retried.",
        "schema": {"type": ["number", "null"], "minimum": 1, "maximum": 600, "default": DEFAULT_TIMEOUT},
    },
    "max_retries": {
        "label": "Attempts per call",
        "description": "How many times a call is tried on a transient failure (5xx, timeout, rate limit).",
        "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 10, "default": 4},
    },
    "allow_plain_http": {
        "label": "Allow plain http:// to a remote host",
        "description": (
            "Sends the API key unencrypted. Only for a trusted network, e.g. the simulator in another "
            "container; 127.0.0.1 and localhost never need it."
        ),
        "schema": {"type": ["boolean", "null"], "default": False},
    },
}
#: what the Port field says; the browser test types what it asks for
PORT_LABEL = "Port (type 443: the Test button needs it on Airflow 3.3.1-3.3.2)"
# ``port`` stays visible although the Base URL can carry one: Airflow 3.3.1-3.3.2's Test button is
# refused ("Bad Request") for any connection whose port is empty (apache/airflow#73298), so users
# of those versions fill in 443. The label says so: a grey "443" placeholder alone looks like a
# value already filled in (issue 17). The hook appends Port to a Base URL that has no port of its
# own; a Base URL's own port wins, and the Test message says which address was used.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["schema", "login", "extra"],
    "relabeling": {"password": "API Key", "host": "Base URL", "port": PORT_LABEL},
    "placeholders": {
        "host": DEFAULT_BASE_URL,
        "password": "your ModelsLab API key",
        "timeout": str(int(DEFAULT_TIMEOUT)),
        "max_retries": "4",
    },
}
