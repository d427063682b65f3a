"""Look for a secret everywhere an Airflow run leaves text: files, database cells, captured output.

The secret is searched as raw bytes in every file (the SQLite file included), and in every cell
of every table after decoding what Airflow encodes: zlib (compressed serialized DAGs), Fernet
(trigger kwargs, connection passwords, variables; with the home's key) and UTF-8. Besides the
plain text, base64 (three alignments, standard and URL-safe) and hex forms are looked for, so a
key that leaked inside an encoded header or blob is still found.
"""

from __future__ import annotations

import base64
import contextlib
import sqlite3
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def encoded_forms(secret: str) -> dict[str, bytes]:
    """The secret as the byte strings it would show up as, by name."""
    raw = secret.encode()
    forms = {"plain": raw, "hex": raw.hex().encode()}
    for pad in range(3):
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            # drop the first and last 4-char groups: they mix with whatever surrounds the secret
            forms[f"{name}+{pad}"] = encode(b"\0" * pad + raw)[4:-4]
    return forms


@dataclass
class Hit:
    where: str
    form: str

    def __str__(self) -> str:
        return f"{self.where} ({self.form})"


@dataclass
class LeakScanner:
    """Collects hits of ``secret`` and counts what was scanned, so a report can say how much."""

    secret: str
    fernet_key: bytes | None = None
    hits: list[Hit] = field(default_factory=list)
    scanned: Counter[str] = field(default_factory=Counter)
    #: rows scanned per table
    rows: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._forms = encoded_forms(self.secret)
        self._fernet: Any = None
        if self.fernet_key:
            from cryptography.fernet import Fernet

            self._fernet = Fernet(self.fernet_key)

    # ----- primitives ------------------------------------------------------------------------

    def blob(self, data: bytes, where: str) -> None:
        self.scanned["bytes"] += len(data)
        for form, needle in self._forms.items():
            if needle in data:
                self.hits.append(Hit(where, form))

    def text(self, data: str, where: str) -> None:
        self.blob(data.encode("utf-8", "surrogateescape"), where)

    def value(self, value: Any, where: str) -> None:
        """One stored value, raw and in every decoding that applies."""
        if value is None or isinstance(value, int | float):
            return
        data = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")
        self.blob(data, where)
        for label, decoded in self._decodings(data):
            self.scanned[f"decoded:{label}"] += 1
            self.blob(decoded, f"{where} [{label}]")

    def _decodings(self, data: bytes) -> list[tuple[str, bytes]]:
        out = []
        with contextlib.suppress(zlib.error):
            out.append(("zlib", zlib.decompress(data)))
        if self._fernet is not None:
            with contextlib.suppress(Exception):  # most values are not Fernet tokens
                out.append(("fernet", self._fernet.decrypt(data.strip())))
        return out

    def fernet_decrypt(self, token: str | bytes) -> str | None:
        if self._fernet is None:
            return None
        try:
            raw = self._fernet.decrypt(token.encode() if isinstance(token, str) else token)
        except Exception:
            return None
        return raw.decode("utf-8", "replace")

    # ----- whole sources ---------------------------------------------------------------------

    def file(self, path: Path, where: str | None = None) -> None:
        self.scanned["files"] += 1
        self.blob(path.read_bytes(), where or str(path))

    def tree(self, root: Path) -> None:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                self.file(path, str(path.relative_to(root)))

    def database(self, path: Path) -> None:
        """Every cell of every table, decoded."""
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                cursor = db.execute(f'SELECT * FROM "{table}"')  # names come from sqlite_master
                columns = [d[0] for d in cursor.description]
                for number, row in enumerate(cursor):
                    self.scanned["db_rows"] += 1
                    self.rows[table] += 1
                    for column, cell in zip(columns, row, strict=True):
                        self.scanned["db_cells"] += 1
                        self.value(cell, f"db {table}.{column} row {number}")

    def report(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(self.scanned.items()))
        return f"{len(self.hits)} hit(s) of the canary; scanned {counts}"
