"""Plain-Python ModelsLab client (no Airflow import): pure core, policies, sync and async transports.

The transports are imported lazily so that importing this package never pulls in an HTTP library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelslab_provider.client.core import (
    API_VERSIONS,
    DEFAULT_BASE_URL,
    DEFAULT_CONN_ID,
    ENDPOINTS,
    V6,
    V7,
    Balance,
    ClientSettings,
    Status,
    VideoResult,
    normalise_request_id,
    resolve_endpoint,
)
from modelslab_provider.client.errors import (
    ModelsLabAmbiguousSubmitError,
    ModelsLabAuthError,
    ModelsLabConfigError,
    ModelsLabCreditsError,
    ModelsLabError,
    ModelsLabJobFailedError,
    ModelsLabNotFoundError,
    ModelsLabPlanError,
    ModelsLabRateLimitError,
    ModelsLabRequestError,
    ModelsLabTimeoutError,
    ModelsLabTransientError,
)
from modelslab_provider.client.policy import PollPolicy, RetryPolicy, WaitTracker
from modelslab_provider.client.responses import normalise_response
from modelslab_provider.client.submit import SubmittedRequest

if TYPE_CHECKING:
    from modelslab_provider.client.aio import AsyncModelsLabClient
    from modelslab_provider.client.sync import ModelsLabClient

__all__ = [
    "API_VERSIONS",
    "DEFAULT_BASE_URL",
    "DEFAULT_CONN_ID",
    "ENDPOINTS",
    "V6",
    "V7",
    "AsyncModelsLabClient",
    "Balance",
    "ClientSettings",
    "ModelsLabAmbiguousSubmitError",
    "ModelsLabAuthError",
    "ModelsLabClient",
    "ModelsLabConfigError",
    "ModelsLabCreditsError",
    "ModelsLabError",
    "ModelsLabJobFailedError",
    "ModelsLabNotFoundError",
    "ModelsLabPlanError",
    "ModelsLabRateLimitError",
    "ModelsLabRequestError",
    "ModelsLabTimeoutError",
    "ModelsLabTransientError",
    "PollPolicy",
    "RetryPolicy",
    "Status",
    "SubmittedRequest",
    "VideoResult",
    "WaitTracker",
    "normalise_request_id",
    "normalise_response",
    "resolve_endpoint",
]


def __getattr__(name: str) -> Any:
    if name == "ModelsLabClient":
        from modelslab_provider.client.sync import ModelsLabClient

        return ModelsLabClient
    if name == "AsyncModelsLabClient":
        from modelslab_provider.client.aio import AsyncModelsLabClient

        return AsyncModelsLabClient
    raise AttributeError(name)
