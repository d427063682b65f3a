"""Write one file so that its final name never holds a partial copy.

* local disk (``file://``): into a hidden ``.<name>.<token>.part`` file in the destination folder,
  then ``os.replace`` onto the final name (atomic on POSIX within one file system);
* object stores (``s3://``, ``gs://``, ...): to a hidden temporary key in the same folder, then the
  file system's move (a server-side copy of the complete object, then a delete). Writing straight
  to the final key is not safe everywhere: on an error, closing an fsspec file commits what was
  written so far, and not every file system can defer or discard an upload. The price is one
  server-side copy per file; a worker killed mid-copy can leave a ``.part`` key behind (an object
  store lifecycle rule on the ``<prefix>/.`` prefix cleans those up).
"""

from __future__ import annotations

import os
import posixpath
import secrets
from typing import Any, BinaryIO, Protocol


class StoragePath(Protocol):
    """What a copy needs of its destination: an fsspec file system and a path on it.

    Airflow's ``ObjectStoragePath`` (a universal-pathlib path) is one.
    """

    @property
    def fs(self) -> Any: ...

    @property
    def path(self) -> str: ...

    def __truediv__(self, name: str) -> Any: ...


class AtomicWriter:
    """Write one file under a hidden temporary name next to it, then move it onto its final name.

    Local disk: ``os.replace`` (atomic within one file system). Object stores: the file system's
    move, a server-side copy of a complete object then a delete; a copy appears whole or not
    at all. The final name thus only ever holds a previous complete copy or the new one.
    """

    def __init__(self, target: StoragePath) -> None:
        from fsspec.implementations.local import LocalFileSystem

        self.target = target
        self.fs = target.fs
        self.local = isinstance(self.fs, LocalFileSystem)
        final = target.path
        folder = posixpath.dirname(final)
        self.tmp = posixpath.join(folder, f".{posixpath.basename(final)}.{secrets.token_hex(4)}.part")
        self._fh: BinaryIO | None = None

    def open(self) -> BinaryIO:
        if self.local:
            os.makedirs(posixpath.dirname(self.tmp), exist_ok=True)
            self._fh = open(self.tmp, "wb")  # noqa: SIM115 - closed in commit/abort
        else:
            # no makedirs: on object stores it would try to create the bucket
            self._fh = self.fs.open(self.tmp, "wb")
        assert self._fh is not None
        return self._fh

    def commit(self) -> None:
        assert self._fh is not None
        self._fh.close()
        if self.local:
            os.replace(self.tmp, self.target.path)
        else:
            self.fs.mv(self.tmp, self.target.path)

    def abort(self) -> None:
        """Drop the temporary file; never raises, so the original error is the one reported."""
        fh, self._fh = self._fh, None
        try:
            if fh is not None:
                fh.close()
        except Exception:  # noqa: S110 - best effort; only the temporary name was written
            pass
        try:
            if self.local:
                os.remove(self.tmp)
            elif self.fs.exists(self.tmp):
                self.fs.rm(self.tmp)
        except Exception:  # noqa: S110 - best effort, as above
            pass
