"""Shared test settings: tests never read a real ModelsLab key or a developer's Airflow home."""

from __future__ import annotations

import os
import tempfile

# unit tests build Airflow objects without a metadata DB; keep them off any real AIRFLOW_HOME
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="modelslab-unit-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.pop("MODELSLAB_API_KEY", None)
