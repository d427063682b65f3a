"""The pure core of ModelsLab's Video Batch API: requests, answers and the wait for them.

:mod:`.plan` builds requests, :mod:`.results` reads answers, :mod:`.wait` decides each polling round.

No I/O, no clock, no Airflow import. The sync and async transports, the hook, the trigger and the
batch operator all go through these functions, so a quirk is handled once.

What ModelsLab documents (https://docs.modelslab.com/video-api/video-batch and
https://docs.modelslab.com/video-api/fetch-video-batch, read 2026-11-30):

* ``POST /api/v6/video/batch`` takes ``model_id``, ``requests`` (3 to 20 entries, all on one
  ``model_id``), optional ``defaults`` ("merged under every entry; a value set on an entry wins"),
  ``track_id`` ("an entry's own track_id is used ...; entries without one inherit the top-level
  value") and ``webhook`` ("called once per request as it finishes"). Supported models:
  ``wan2.2``, ``ltx-2.3``, ``h3-minimax-t2v``, ``h3-minimax-r2v``, ``h3-minimax-start-end-frame``.
  An entry with ``init_image`` takes the image-to-video path, the others text-to-video. The batch
  is validated as a whole before anything is queued. Each entry costs half the matching single
  endpoint (Text to Video Ultra or Image to Video Ultra); an entry not finished 8 minutes after
  submission is failed and refunded.
* ``POST /api/v6/video/batch/fetch/{id}`` answers ``status`` (``processing`` while any entry runs,
  ``success`` once all succeeded, ``failed`` once all failed), ``id``/``batch_id``, ``output``
  (finished videos in request order) and ``results``: one single-fetch body per entry plus
  ``index`` and ``track_id``; a failed entry carries ``refunded: true`` when its charge was
  reversed. An unknown batch id answers ``status: failed``, "Batch not found".
"""

from modelslab_provider.client.batch.plan import (
    BATCH_ENTRY_LIMIT_MINUTES,
    BATCH_FETCH_PATH,
    BATCH_MAX,
    BATCH_MIN,
    BATCH_MODELS,
    BATCH_PATH,
    BATCH_PRICE_FACTOR,
    SINGLE_ENDPOINTS,
    BatchPlan,
    PlannedSubmit,
    batch_sizes,
    batch_track_ids,
    build_batch_body,
    build_batch_fetch,
    build_batch_submit,
    check_model,
    chunk,
    derive_track_id,
    effective_track_ids,
    entries_from,
    merged_entry,
    plan_batches,
    plan_submits,
    single_endpoint,
    validate_entry,
)
from modelslab_provider.client.batch.results import (
    BatchStatus,
    BatchSubmitted,
    EntryResult,
    InputResult,
    assemble,
    entry_from_single,
    failure_summary,
    parse_batch_fetch,
    parse_batch_submit,
)
from modelslab_provider.client.batch.wait import BatchWait

__all__ = [
    "BATCH_ENTRY_LIMIT_MINUTES",
    "BATCH_FETCH_PATH",
    "BATCH_MAX",
    "BATCH_MIN",
    "BATCH_MODELS",
    "BATCH_PATH",
    "BATCH_PRICE_FACTOR",
    "SINGLE_ENDPOINTS",
    "BatchPlan",
    "BatchStatus",
    "BatchSubmitted",
    "BatchWait",
    "EntryResult",
    "InputResult",
    "PlannedSubmit",
    "assemble",
    "batch_sizes",
    "batch_track_ids",
    "build_batch_body",
    "build_batch_fetch",
    "build_batch_submit",
    "check_model",
    "chunk",
    "derive_track_id",
    "effective_track_ids",
    "entries_from",
    "entry_from_single",
    "failure_summary",
    "merged_entry",
    "parse_batch_fetch",
    "parse_batch_submit",
    "plan_batches",
    "plan_submits",
    "single_endpoint",
    "validate_entry",
]
