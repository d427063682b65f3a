"""Fail unless a built wheel's METADATA has every classifier group and project URL users look for.

    python scripts/check_metadata.py dist/airflow_provider_modelslab-*.whl

PyPI shows the project URLs in its sidebar and filters by classifiers; ``scripts/check_dist.sh``
runs this on the wheel it built, so a pyproject.toml edit that drops one fails the built-wheel step.
"""

from __future__ import annotations

import sys
import zipfile
from email.parser import HeaderParser

#: each needs at least one ``Classifier:`` line starting with it
CLASSIFIER_GROUPS = (
    "Development Status ::",
    "Intended Audience ::",
    "Topic ::",
    "Operating System ::",
    "Programming Language :: Python :: 3.11",
    "Framework :: Apache Airflow :: Provider",
    "Typing ::",
)
#: ``Project-URL: <label>, <url>`` labels
URL_LABELS = ("Documentation", "Changelog", "Source", "Issues")


def missing_metadata(metadata: str) -> list[str]:
    """What ``metadata`` (a METADATA file's text) lacks, as readable names; empty when complete."""
    headers = HeaderParser().parsestr(metadata)
    classifiers = headers.get_all("Classifier") or []
    labels = {u.split(",", 1)[0].strip() for u in headers.get_all("Project-URL") or []}
    missing = [
        f"classifier {g}..." for g in CLASSIFIER_GROUPS if not any(c.startswith(g) for c in classifiers)
    ]
    missing += [f"Project-URL {label}" for label in URL_LABELS if label not in labels]
    if headers.get("License-Expression") is None:
        missing.append("License-Expression")
    return missing


def wheel_metadata(wheel: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name).decode()


def main(argv: list[str]) -> int:
    [wheel] = argv
    missing = missing_metadata(wheel_metadata(wheel))
    if missing:
        print(f"[dist-check] FAILED: the wheel's METADATA lacks: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"[dist-check] METADATA has the classifier groups {', '.join(CLASSIFIER_GROUPS)} and the URLs")
    print(f"[dist-check] {', '.join(URL_LABELS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
