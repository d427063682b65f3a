"""XCom keys of a paid job's record (``return_value`` holds the outputs); cheap to import at parse time.

The keys of a finished job's outputs (``results``, ``video_url``...) live in
:mod:`modelslab_provider.events`, beside the one function per kind of job that fills them.
"""

from modelslab_provider.events import XCOM_RESULTS  # noqa: F401  (re-exported: older imports keep working)

XCOM_REQUEST_ID = "request_id"
XCOM_TRACK_ID = "track_id"
XCOM_API_VERSION = "api_version"
XCOM_FETCH_URL = "fetch_url"
XCOM_ETA = "eta"
XCOM_BATCH_IDS = "batch_ids"
XCOM_REQUEST_IDS = "request_ids"
