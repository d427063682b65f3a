"""The inputs of a copy, checked before anything is fetched, and the names its files get (no I/O)."""

from __future__ import annotations

import ast
import hashlib
import mimetypes
import posixpath
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from modelslab_provider.download.errors import DownloadRefused

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
_EXT_RE = re.compile(r"^[a-z0-9]{1,8}$")
_KNOWN_TYPES = {"video/mp4": "mp4", "image/gif": "gif", "video/webm": "webm", "video/quicktime": "mov"}


def source_urls(value: Any) -> list[str]:
    """Normalise ``urls`` (a list, an XCom result, one URL, or a rendered list literal) to http(s) URLs.

    Every entry is checked before anything is downloaded, so a ``file://`` path or any other
    scheme smuggled into the list fails the task with nothing written.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise DownloadRefused(f"urls is not a URL or a list of URLs: {text[:200]!r}") from None
        else:
            value = [text] if text else []
    if value is None:
        value = []
    if not isinstance(value, Iterable) or isinstance(value, bytes | dict):
        raise DownloadRefused(f"urls must be a URL or a list of URLs, got {type(value).__name__}")
    flat: list[Any] = []
    for item in value:
        # a mapped upstream task gives one list per map index
        flat.extend(item if isinstance(item, list | tuple) else [item])
    urls = []
    for index, item in enumerate(flat):
        if not isinstance(item, str):
            raise DownloadRefused(f"urls[{index}] is a {type(item).__name__}, not a URL string")
        url = item.strip()
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            shown = url if len(url) < 120 else url[:117] + "..."
            raise DownloadRefused(
                f"urls[{index}] = {shown!r} is not an http(s) URL; only http and https sources are "
                "copied (local paths and other schemes are refused). Nothing was written."
            )
        urls.append(url)
    if not urls:
        raise DownloadRefused("There are no video URLs to store (urls is empty).")
    return urls


def check_destination_syntax(destination: Any) -> str:
    """Reject what can never be an object-storage folder, with a message that says what to write."""
    example = "e.g. 'file:///data/videos/' or 's3://my-bucket/videos/'"
    if not isinstance(destination, str) or not destination.strip():
        raise DownloadRefused(f"destination must be an object-storage URI ({example}).")
    text = destination.strip()
    match = _SCHEME_RE.match(text)
    if match is None:
        raise DownloadRefused(
            f"destination {text!r} is not an object-storage URI: it needs a scheme ({example})."
        )
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        raise DownloadRefused(
            f"destination {text!r} is a web URL; http(s) is a source here, not a place to write to "
            f"({example})."
        )
    if scheme == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise DownloadRefused(
                f"destination {text!r} is not an absolute file URI; write file:///absolute/path/ "
                "(three slashes)."
            )
    return text


def file_name(request_id: str | None, index: int, url: str, content_type: str | None) -> str:
    """``<request_id>_<index>.<ext>``, stable across tries so a retry overwrites its own files.

    Without a request id the name is the URL's file name plus a short hash of the whole URL
    (``abc-1f2e3d4c.mp4``): just as stable, and two sources that end in the same file name (an
    output and its proxy link, or two hosts) never share a file. A URL without a file name is
    named by its hash alone. The extension comes from the URL, else the Content-Type, else ``bin``.
    """
    path = unquote(urlsplit(url).path)
    base = posixpath.basename(path)
    stem, dot, ext = base.rpartition(".")
    ext = ext.lower() if dot and _EXT_RE.match(ext.lower()) else ""
    if not dot:
        stem = base
    if not ext and content_type:
        mime = content_type.split(";", 1)[0].strip().lower()
        guessed = _KNOWN_TYPES.get(mime) or (mimetypes.guess_extension(mime) or "").lstrip(".")
        ext = guessed if _EXT_RE.match(guessed) else ""
    ext = ext or "bin"
    if request_id:
        prefix = f"{_safe(str(request_id))}_{index}"
    else:
        safe_stem = _safe(stem)[:100]
        prefix = f"{safe_stem}-{_url_digest(url)[:8]}" if safe_stem else _url_digest(url)
    return f"{prefix}.{ext}"


def unique_name(name: str, index: int, taken: set[str]) -> str:
    """``name``, or ``<stem>_<index>.<ext>`` when an earlier file of this run already has it."""
    if name not in taken:
        return name
    stem, dot, ext = name.rpartition(".")
    return f"{stem}_{index}.{ext}" if dot else f"{name}_{index}"


def _safe(text: str) -> str:
    return _SAFE_NAME_RE.sub("-", text).strip(".-")[:150]


def _url_digest(url: str) -> str:
    return hashlib.sha256(url.split("#", 1)[0].encode()).hexdigest()[:16]
