"""Report what a ModelsLab task read and wrote to Airflow's hook-level lineage collector.

Lineage consumers (the OpenLineage provider, or any plugin registering a hook lineage reader)
then see: a generating task reads the API endpoint it submitted to and writes the output URLs;
the store task reads those URLs and writes the stored files. Without a registered reader Airflow
hands out a no-op collector and these calls cost next to nothing. Reporting never fails a task,
and no URL is reported with its query string or user info (signed links stay out of lineage).

The collector comes from ``apache-airflow-providers-common-compat``, which gives the same
``add_input_asset`` / ``add_output_asset`` methods on every supported Airflow version.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modelslab_provider.client.core import redact_url

if TYPE_CHECKING:
    from modelslab_provider.hooks.modelslab import ModelsLabHook

log = logging.getLogger(__name__)


def _collector() -> Any:
    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    return get_hook_lineage_collector()


def _active(collector: Any) -> bool:
    """False for Airflow's no-op collector (no hook lineage reader is registered)."""
    return type(collector).__name__ != "NoOpCollector"


def report_copy(source: str, stored_uri: str, context: Any) -> None:
    """One copied file: the source URL is an input, the stored file an output.

    ``context`` is the object that did the I/O (the destination ``ObjectStoragePath``), as
    Airflow's own ``ObjectStoragePath.copy`` reports it.
    """
    try:
        collector = _collector()
        if not _active(collector):
            return
        collector.add_input_asset(context=context, uri=redact_url(source))
        collector.add_output_asset(context=context, uri=stored_uri)
    except Exception:
        log.debug("Could not report lineage for %s", redact_url(source), exc_info=True)


def report_video_job(hook: ModelsLabHook, *, endpoint: str, request_id: Any, urls: Iterable[str]) -> None:
    """A finished generation: the endpoint URL it was submitted to is an input, the videos outputs.

    The request id goes into the input asset's ``extra``. The hook's connection is read only
    when a lineage reader is registered.
    """
    try:
        collector = _collector()
        if not _active(collector):
            return
        from modelslab_provider.client.core import resolve_endpoint

        # a path of its own (the Video Batch API's) is used as given
        path = endpoint if endpoint.startswith("api/") else resolve_endpoint(endpoint)[1]
        base_url = hook.get_client_settings().base_url
        extra = {"request_id": str(request_id)} if request_id not in (None, "") else None
        collector.add_input_asset(context=hook, uri=f"{base_url}/{path}", asset_extra=extra)
        for url in urls:
            collector.add_output_asset(context=hook, uri=redact_url(url))
    except Exception:
        log.debug("Could not report lineage for the %s request", endpoint, exc_info=True)


def http_dataset_name(uri: str) -> tuple[str, str]:
    """OpenLineage (namespace, name) of an http(s) URL: ``scheme://host[:port]`` and the path."""
    parts = urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[-1].lower()
    return f"{parts.scheme.lower()}://{host}", parts.path or "/"


def http_asset_to_openlineage(asset: Any, lineage_context: Any) -> Any:
    """Convert an http(s) ``Asset`` to an OpenLineage dataset.

    Registered for the ``http`` and ``https`` schemes in the provider info (``asset-uris``):
    without a converter the OpenLineage provider drops such assets, so the ModelsLab URLs that
    the operators report would never reach an OpenLineage backend. Imported only by the
    OpenLineage provider, which brings the ``openlineage`` client this needs.
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset

    namespace, name = http_dataset_name(asset.uri)
    return Dataset(namespace=namespace, name=name)
