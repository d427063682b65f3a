"""Apache Airflow provider for the ModelsLab video generation API."""

__version__ = "0.1.0"
