# The ModelsLab connection as environment variables, set the same on every Airflow component.
# Included by docs/connection.md; tests/unit/test_docs_snippets.py loads every export below as a
# connection and checks the address and options the provider reads from it (the "# ->" lines).

# [START json]
# JSON form: only the key
export AIRFLOW_CONN_MODELSLAB_DEFAULT='{"conn_type": "modelslab", "password": "<your API key>"}'
# -> https://modelslab.com timeout=30 max_retries=4

# with a Base URL and options
export AIRFLOW_CONN_MODELSLAB_DEFAULT='{"conn_type": "modelslab", "password": "<your API key>", "host": "https://modelslab.com", "extra": {"timeout": 60, "max_retries": 6}}'
# -> https://modelslab.com timeout=60 max_retries=6

# the simulator in another container, reached over plain http on a trusted network
export AIRFLOW_CONN_MODELSLAB_DEFAULT='{"conn_type": "modelslab", "password": "any-key", "host": "http://simulator:8765", "extra": {"allow_plain_http": true}}'
# -> http://simulator:8765 timeout=30 max_retries=4
# [END json]

# [START uri]
# URI form: the key URL-encoded (here the key "sk/ab+c="), the default Base URL
export AIRFLOW_CONN_MODELSLAB_DEFAULT='modelslab://:sk%2Fab%2Bc%3D@modelslab.com'
# -> https://modelslab.com timeout=30 max_retries=4

# a full Base URL as host (URL-encoded: it has a scheme), the extras as query parameters
export AIRFLOW_CONN_MODELSLAB_DEFAULT='modelslab://:sk%2Fab%2Bc%3D@https%3A%2F%2Fent.example.com%2F?timeout=60&max_retries=6'
# -> https://ent.example.com timeout=60 max_retries=6

# the local simulator (python -m modelslab_provider.simulator --port 8765)
export AIRFLOW_CONN_MODELSLAB_DEFAULT='modelslab://:any-key@http%3A%2F%2F127.0.0.1%3A8765'
# -> http://127.0.0.1:8765 timeout=30 max_retries=4
# [END uri]
