"""Helpers for the browser test: a real Airflow started on 127.0.0.1 and a headless Chromium."""
