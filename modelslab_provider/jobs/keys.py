"""XCom keys of a paid job's record (``return_value`` holds the outputs); cheap to import at parse time."""

XCOM_REQUEST_ID = "request_id"
XCOM_TRACK_ID = "track_id"
XCOM_API_VERSION = "api_version"
XCOM_FETCH_URL = "fetch_url"
XCOM_ETA = "eta"
XCOM_BATCH_IDS = "batch_ids"
XCOM_REQUEST_IDS = "request_ids"
#: every input's result, failed ones included (batch tasks)
XCOM_RESULTS = "results"
