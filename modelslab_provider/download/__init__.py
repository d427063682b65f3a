"""Copy public video URLs into a storage folder safely: the logic behind the store operator.

A package without any Airflow import, so every rule of a copy (which hosts may be fetched, how a
file is named and written, when a try is repeated) is tested and read on its own, and
:mod:`modelslab_provider.operators.storage` keeps only the Airflow glue (templating, XCom, assets,
lineage, exceptions). It is a package rather than one module because the concerns are each
sizeable and independent:

* :mod:`.names`: checking the ``urls`` and ``destination`` inputs and naming the files (no I/O);
* :mod:`.hosts`: public internet addresses only, on every redirect hop, each host resolved once;
* :mod:`.pinning`: the request sent to the address that was checked, and to no other;
* :mod:`.writer`: a hidden temporary file moved onto the final name, so no half file is visible;
* :mod:`.copier`: one HTTP session, redirects, retries, the byte limit and the per-file deadline.

Failures are :class:`~.errors.DownloadError` (``final`` says whether a retry of the task can help)
or, for one try, :class:`~.errors.VideoDownloadError`. Importing this package pulls in no HTTP
library: ``requests`` is imported when a copy starts.
"""

from __future__ import annotations

from modelslab_provider.download.copier import (
    CHUNK_SIZE,
    DEFAULT_FILE_TIMEOUT,
    DEFAULT_MAX_BYTES,
    MAX_REDIRECTS,
    USER_AGENT,
    Copier,
    CopyLimits,
    StoredVideo,
)
from modelslab_provider.download.errors import (
    DownloadError,
    DownloadGaveUp,
    DownloadRefused,
    VideoDownloadError,
)
from modelslab_provider.download.hosts import HostGuard, Origin, address_problem, origin, resolve_host
from modelslab_provider.download.names import check_destination_syntax, file_name, source_urls

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_FILE_TIMEOUT",
    "DEFAULT_MAX_BYTES",
    "MAX_REDIRECTS",
    "USER_AGENT",
    "Copier",
    "CopyLimits",
    "DownloadError",
    "DownloadGaveUp",
    "DownloadRefused",
    "HostGuard",
    "Origin",
    "StoredVideo",
    "VideoDownloadError",
    "address_problem",
    "check_destination_syntax",
    "file_name",
    "origin",
    "resolve_host",
    "source_urls",
]
