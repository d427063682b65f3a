"""Copy generated videos from their short-lived output URLs to storage the user owns.

ModelsLab output URLs expire (temporary outputs are deleted after 24 hours) and can 404 for a few
seconds right after a job succeeds. :class:`ModelsLabStoreVideosOperator` streams each URL into an
Airflow ``ObjectStoragePath`` destination (``file://``, ``s3://``, ``gs://``, ... with the storage's
own connection) so the rest of a media pipeline works on files that stay. This module is the
Airflow glue; how a file is fetched and written (public hosts only, atomic at its final name, with
retries and limits) lives in :mod:`modelslab_provider.download`, which imports nothing of Airflow.
The ModelsLab API key is never involved: output URLs are public.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, BaseOperator

from modelslab_provider import download
from modelslab_provider.client.core import DEFAULT_CONN_ID
from modelslab_provider.client.policy import RetryPolicy
from modelslab_provider.download import (  # noqa: F401  (re-exported: users and tests import them here)
    DEFAULT_FILE_TIMEOUT,
    DEFAULT_MAX_BYTES,
    MAX_REDIRECTS,
    USER_AGENT,
    CopyLimits,
    DownloadError,
    HostGuard,
    Origin,
    StoredVideo,
    VideoDownloadError,
    address_problem,
    file_name,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Asset, Context, ObjectStoragePath

T = TypeVar("T")


def _failure(exc: DownloadError) -> AirflowException:
    """The Airflow exception for a copy that ended: a final one skips the task's retries."""
    return AirflowFailException(str(exc)) if exc.final else AirflowException(str(exc))


def _airflow_errors(func: Callable[[Any], T]) -> Callable[[Any], T]:
    """``func`` with a copy's errors raised as Airflow exceptions (see :func:`_failure`)."""

    @functools.wraps(func)
    def checked(value: Any) -> T:
        try:
            return func(value)
        except DownloadError as exc:
            raise _failure(exc) from None

    return checked


#: the ``urls`` and ``destination`` inputs checked, or AirflowFailException saying what to fix
source_urls = _airflow_errors(download.source_urls)
check_destination_syntax = _airflow_errors(download.check_destination_syntax)


class ModelsLabStoreVideosOperator(BaseOperator):
    """Copy output videos (http(s) URLs, e.g. a generating task's XCom) into an object-storage folder.

    Each URL is streamed to ``<destination>/<request_id>_<index>.<ext>``; the early 404/403, 429,
    5xx and connection errors are retried with capped, jittered backoff; the byte count is checked
    against ``Content-Length``; ``max_bytes`` guards the disk and ``file_timeout`` the clock. Only
    public hosts are fetched (:mod:`modelslab_provider.download.hosts`). Returns the stored URIs
    (XCom ``return_value``) and pushes details (source, uri, bytes, content type) as XCom ``files``;
    each copy is reported to Airflow's hook lineage collector (source URL in, stored file out).

    :param urls: URLs to copy: a list, an XComArg such as ``generate.output``, one URL, or a
        rendered list. Mapped upstream results (a list of lists) are flattened; a URL listed twice
        is copied once. Templated.
    :param destination: folder URI understood by Airflow's ``ObjectStoragePath``, e.g.
        ``file:///data/videos/`` or ``s3://bucket/prefix/``. Templated.
    :param destination_conn_id: Airflow connection of the storage (e.g. an ``aws`` connection for
        ``s3://``); same as writing ``s3://<conn_id>@bucket/prefix/``. Templated.
    :param request_id: ModelsLab request id used to name the files, so a retry overwrites rather
        than duplicates. Without it names come from the URLs (file name plus a hash of the URL).
        Templated.
    :param max_bytes: refuse a file larger than this (checked against ``Content-Length`` before
        writing and again while streaming); ``None`` for no limit.
    :param asset: an ``Asset`` (or its URI) to add to the task's outlets; each run's asset event
        carries the stored URIs in its ``extra`` so downstream DAGs can schedule on new videos.
    :param download_attempts: tries per file within one task try.
    :param retry_initial_delay: first backoff in seconds (it doubles, capped by ``retry_max_delay``).
    :param http_timeout: seconds to wait for the server to send a response or the next chunk.
    :param file_timeout: seconds one file may take overall, its tries and the pauses between them
        included; ``None`` for no limit. A file still unfinished then fails the task (Airflow
        ``retries`` apply).
    :param allow_private_hosts: also fetch from loopback, private, link-local and reserved
        addresses. Off by default so a URL or redirect cannot reach the worker's own network.
    :param use_env_proxies: send downloads through the proxy named by ``HTTP_PROXY``/``HTTPS_PROXY``
        (``NO_PROXY`` respected). Off by default: proxy variables are ignored and each request goes
        to the address that was checked. On, the proxy resolves names and connects, so the proxy,
        not this task, decides which addresses can be reached (see the security page of the docs).
    :param modelslab_conn_id: the ModelsLab connection whose Base URL counts as trusted: sources on
        exactly that origin (e.g. the local simulator on 127.0.0.1) are fetched even when private.
        Only its host is read, never its key; ``None`` trusts no origin.
    """

    template_fields: Sequence[str] = ("urls", "destination", "destination_conn_id", "request_id")
    ui_color = "#e8f4f0"

    def __init__(
        self,
        *,
        urls: Any,
        destination: str,
        destination_conn_id: str | None = None,
        request_id: str | None = None,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        asset: Asset | str | None = None,
        download_attempts: int = 6,
        retry_initial_delay: float = 2.0,
        retry_max_delay: float = 30.0,
        http_timeout: float = 60.0,
        file_timeout: float | None = DEFAULT_FILE_TIMEOUT,
        allow_private_hosts: bool = False,
        use_env_proxies: bool = False,
        modelslab_conn_id: str | None = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        if asset is not None:
            asset = _as_asset(asset)
            kwargs["outlets"] = [*_as_list(kwargs.get("outlets")), asset]
        super().__init__(**kwargs)
        if isinstance(destination, str) and "{{" not in destination and "{%" not in destination:
            check_destination_syntax(destination)  # a literal typo fails at parse time
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError("max_bytes must be a positive number of bytes or None")
        if download_attempts < 1:
            raise ValueError("download_attempts must be at least 1")
        if file_timeout is not None and not file_timeout > 0:
            raise ValueError("file_timeout must be a positive number of seconds or None")
        self.urls = urls
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.request_id = request_id
        self.max_bytes = max_bytes
        self.asset = asset
        self.download_attempts = download_attempts
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay
        self.http_timeout = http_timeout
        self.file_timeout = file_timeout
        self.allow_private_hosts = allow_private_hosts
        self.use_env_proxies = use_env_proxies
        self.modelslab_conn_id = modelslab_conn_id
        self._trusted: Origin | bool | None = False  # False: not looked up yet

    # ----- execute -------------------------------------------------------------------------------

    def execute(self, context: Context) -> list[str]:
        from modelslab_provider.lineage import report_copy

        listed = source_urls(self.urls)
        urls = list(dict.fromkeys(listed))  # one copy per distinct URL, in the order given
        if len(urls) < len(listed):
            self.log.info("%d repeated URL(s) in urls; each URL is copied once", len(listed) - len(urls))
        folder = self.destination_path()
        # a template pulling a missing XCom renders "None": name the files from their URLs then
        rendered = str(self.request_id).strip() if self.request_id is not None else ""
        request_id = rendered if rendered not in ("", "None") else None
        copier = download.Copier(
            folder,
            request_id=request_id,
            limits=CopyLimits(
                max_bytes=self.max_bytes, http_timeout=self.http_timeout, file_timeout=self.file_timeout
            ),
            retry=RetryPolicy(
                max_attempts=self.download_attempts,
                initial_delay=self.retry_initial_delay,
                max_delay=self.retry_max_delay,
                max_retry_after=max(self.retry_max_delay, 1.0),
            ),
            guard=HostGuard(allow_private=self.allow_private_hosts, trusted_origin=self._trusted_origin),
            use_env_proxies=self.use_env_proxies,
            log=self.log,
        )
        self.log.info("Copying %d URL(s) %s", len(urls), copier.mode())
        stored: list[StoredVideo] = []
        try:
            with copier:
                for index, url in enumerate(urls):
                    item = copier.copy(url, index)
                    stored.append(item)
                    report_copy(item.source, item.uri, folder)
        except DownloadError as exc:
            raise _failure(exc) from None
        uris = [item.uri for item in stored]
        if self.do_xcom_push:
            context["ti"].xcom_push(key="files", value=[item.to_dict() for item in stored])
        if self.asset is not None:
            extra: dict[str, Any] = {
                "uris": uris,
                "request_id": request_id,
                "bytes": sum(item.bytes for item in stored),
            }
            context["outlet_events"][self.asset].extra = extra
        return uris

    def destination_path(self) -> ObjectStoragePath:
        """The rendered destination as an ``ObjectStoragePath`` whose file system is usable."""
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        text = check_destination_syntax(self.destination)
        conn_id = self.destination_conn_id or None
        try:
            path = ObjectStoragePath(text, conn_id=conn_id) if conn_id else ObjectStoragePath(text)
        except (ValueError, TypeError) as exc:
            raise AirflowFailException(
                f"destination {text!r} is not a usable object-storage URI: {exc}"
            ) from None
        try:
            path.fs  # noqa: B018 - resolves the file system (and its connection) before any download
        except (ValueError, ImportError) as exc:
            raise AirflowFailException(
                f"destination {text!r}: no file system for {path.protocol}:// ({exc}). Install the "
                "package that provides it on every worker (e.g. apache-airflow-providers-amazon[s3fs] "
                "for s3://, apache-airflow-providers-google for gs://) and check the connection id."
            ) from None
        return path

    def _trusted_origin(self) -> Origin | None:
        """The ModelsLab connection's Base URL origin, looked up once and only when needed."""
        if self._trusted is False:
            self._trusted = None
            if self.modelslab_conn_id:
                try:
                    from modelslab_provider.hooks.modelslab import ModelsLabHook

                    hook = ModelsLabHook(modelslab_conn_id=self.modelslab_conn_id)
                    self._trusted = download.origin(hook.get_client_settings().base_url)
                except Exception as exc:  # a missing or broken connection just trusts nothing
                    self.log.debug("No trusted ModelsLab origin (%s)", type(exc).__name__)
        return self._trusted if isinstance(self._trusted, tuple) else None


def _as_asset(value: Asset | str) -> Asset:
    from airflow.providers.common.compat.sdk import Asset

    return value if isinstance(value, Asset) else Asset(value)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple | set) else [value]
