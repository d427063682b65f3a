"""The classpath batch tasks deferred with before the provider had one trigger.

Airflow loads a stored trigger by its classpath, so a batch task deferred under
``modelslab_provider.triggers.batch.BatchFetchTrigger`` before an upgrade still resumes after it:
that name is now :class:`~modelslab_provider.triggers.video.VideoFetchTrigger`, which takes the
same ``jobs=`` kwargs. The batch wait itself is in :mod:`.batch_wait`.
"""

from __future__ import annotations

from modelslab_provider.triggers.video import VideoFetchTrigger as BatchFetchTrigger

__all__ = ["BatchFetchTrigger"]
