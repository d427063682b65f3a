"""The errors of a copy: one try that may be repeated, or a copy that ends (finally or for now)."""

from __future__ import annotations

import re

from modelslab_provider.client.errors import ModelsLabTransientError


class VideoDownloadError(ModelsLabTransientError):
    """One try at copying a file failed in a way another try may fix (HTTP status, short body)."""


class DownloadError(Exception):
    """A copy that ended; the message says what happened and what to change."""

    #: no retry of the task can help (bad input, refused host, too big, a hopeless HTTP status)
    final = False


class DownloadRefused(DownloadError):
    """Another try cannot help: nothing is fetched, or the partial copy is removed."""

    final = True


class DownloadGaveUp(DownloadError):
    """The tries or the per-file time ran out; a later retry of the task may still succeed."""


def describe(exc: BaseException) -> str:
    """One line about a transport error, without query strings (signed URLs stay out of logs)."""
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    text = re.sub(r"\?\S*", "?...", text)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
