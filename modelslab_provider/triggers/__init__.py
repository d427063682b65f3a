"""Triggers of the ModelsLab provider (run in the Airflow triggerer)."""
