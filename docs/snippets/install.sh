# Included by docs/installation.md; tests/unit/test_docs_snippets.py checks that AIRFLOW_VERSION is
# the Airflow release the Makefile (and so CI's main step) tests.
AIRFLOW_VERSION=3.3.2
PYTHON_VERSION="$(python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
pip install "apache-airflow==${AIRFLOW_VERSION}" \
  --constraint "https://raw.githubusercontent.com/apache/airflow/constraints-${AIRFLOW_VERSION}/constraints-${PYTHON_VERSION}.txt"
pip install airflow-provider-modelslab
