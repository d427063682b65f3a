"""Reliability and security test helpers: the fault matrix spec, a controllable simulator process,
real Airflow components, and the canary-key scanner."""
