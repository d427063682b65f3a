"""Reproducible benchmarks against Airflow's HTTP provider; ``python benchmarks/run.py`` runs them all."""
