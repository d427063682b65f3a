"""A raw HTTP answer through the steps both transports apply to it: decode, then normalise."""

from __future__ import annotations

from modelslab_provider.client.core import VideoResult
from modelslab_provider.client.responses import decode_response, normalise_response


def parse_answer(status_code: int, body: bytes, *, retry_after_header: str | None = None) -> VideoResult:
    """What a fetch or submit returns (or raises) for this answer, as the transports compute it."""
    data = decode_response(status_code, body, retry_after_header=retry_after_header)
    return normalise_response(data, status_code)
