"""An Airflow connection of type ``modelslab`` read into client settings, with errors that say what to fix.

The key lives in the password (or the extra's ``api_key``), the base URL in the host (plus the
Port field), options in the extra. Used by :class:`~modelslab_provider.hooks.modelslab.ModelsLabHook`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from modelslab_provider.client.core import DEFAULT_TIMEOUT, ClientSettings, is_loopback, normalise_base_url
from modelslab_provider.client.errors import ModelsLabConfigError

if TYPE_CHECKING:
    from airflow.sdk import Connection


def settings_from_connection(
    conn: Connection, extra: Mapping[str, Any], *, name_connection: bool = True
) -> ClientSettings:
    """Build client settings from a connection, with errors that name the connection and field.

    ``name_connection=False`` words the errors for the Test button, which checks a temporary copy
    of the connection under a random id.
    """
    conn_id = getattr(conn, "conn_id", None) or "?"
    this = f"Connection {conn_id!r}" if name_connection else "This connection"
    key = conn.password or extra.get("api_key")
    if not key or not str(key).strip():
        raise ModelsLabConfigError(
            f"{this} has no API key: put your ModelsLab API key in its password "
            "field (labelled 'API Key' in the UI)."
        )
    try:
        host = base_url_from_connection(conn)
        # an empty form field means the default; 0 is a value (and is refused below, not replaced)
        timeout = float(_given(extra.get("timeout"), DEFAULT_TIMEOUT))
        retries = int(_given(extra.get("max_retries"), 4))
    except ModelsLabConfigError as exc:
        raise ModelsLabConfigError(f"{this}: {exc}") from None
    except (TypeError, ValueError):
        raise ModelsLabConfigError(
            f"{this}: 'timeout' must be a number of seconds and 'max_retries' an integer."
        ) from None
    if not 1 <= retries <= 10:
        raise ModelsLabConfigError(f"{this}: 'max_retries' must be between 1 and 10.")
    try:
        settings = ClientSettings(
            api_key=str(key).strip(), base_url=host, timeout=timeout, max_retries=retries
        )
    except ModelsLabConfigError as exc:
        raise ModelsLabConfigError(f"{this}: {exc}") from None
    _refuse_cleartext(settings.base_url, extra.get("allow_plain_http"), this)
    return settings


def base_url_from_connection(conn: Connection) -> str:
    """The Base URL (host), with the Port field appended when the Base URL has no port of its own.

    A Base URL's own port wins over the Port field: the URL is what users copy from ModelsLab or
    from the simulator's banner, while Port exists for Airflow's Test button (see connection_form).
    """
    host = (conn.host or "").strip()
    if host and conn.port:
        parts = urlsplit(normalise_base_url(host))
        if parts.port is None:
            host = f"{parts.scheme}://{parts.netloc}:{int(conn.port)}{parts.path}"
    return host


def unused_port(conn: Connection, base_url: str) -> int | None:
    """The Port field's value when the address in ``base_url`` does not use it, else None."""
    if not conn.port:
        return None
    parts = urlsplit(base_url)
    used = parts.port or (443 if parts.scheme == "https" else 80)
    return None if int(conn.port) == used else int(conn.port)


def _refuse_cleartext(base_url: str, allowed: Any, this: str) -> None:
    """The key travels in the request body: plain http is for loopback (the simulator) or by opt-in."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or is_loopback(parts.hostname or "") or _truthy(allowed):
        return
    raise ModelsLabConfigError(
        f"{this}: the Base URL {base_url} uses plain http:// to another machine, which would send the "
        "API key unencrypted. Change the Base URL (host) field to https://, or, on a trusted network "
        "only, tick the extra field 'Allow plain http:// to a remote host' (allow_plain_http: true)."
    )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return value is True


def _given(value: Any, default: Any) -> Any:
    return default if value is None or (isinstance(value, str) and not value.strip()) else value


def missing_connection_message(conn_id: str) -> str:
    return (
        f"Connection {conn_id!r} is not defined: create a connection of type 'modelslab' with your "
        "ModelsLab API key in its password field (API Key), for example "
        f'AIRFLOW_CONN_{conn_id.upper()}=\'{{"conn_type": "modelslab", "password": "<your key>"}}\'.'
    )
