"""Print the declared floors of pyproject.toml's runtime dependencies as pip constraints (``name==floor``).

``.ci/run`` installs the package with these constraints and runs the unit tests, so a floor that the
code has outgrown (say, an aiohttp name that appeared later) fails CI instead of a user's install.
``apache-airflow`` is left out: each Airflow line is chosen by version in its own CI step.
``--check FILE`` (run with a venv's interpreter) fails unless that venv has exactly the pinned versions.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
SKIP = {"apache-airflow"}
_NAME = r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?"  # a distribution name, extras ignored
_FLOOR = re.compile(rf"^\s*{_NAME}\s*>=\s*([0-9][A-Za-z0-9.]*)\s*(?:,.*)?$")


def floors(dependencies: list[str]) -> list[str]:
    """``name==version`` for every dependency with a ``>=`` floor; an unpinnable one is an error."""
    pins = []
    for spec in dependencies:
        match = _FLOOR.match(spec.split(";")[0])
        if match is None:
            raise SystemExit(f"{PYPROJECT.name}: dependency {spec!r} has no '>=' floor to test")
        name, version = match.groups()
        if name.lower() not in SKIP:
            pins.append(f"{name}=={version}")
    return pins


def check(constraints: Path) -> int:
    """Compare the running environment with every ``name==version`` pin of a constraints file."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    wrong = []
    for line in constraints.read_text(encoding="utf-8").splitlines():
        spec = line.split("#")[0].strip()
        if "==" not in spec:
            continue
        name, pinned = (part.strip() for part in spec.split("==", 1))
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "not installed"
        ok = installed != "not installed" and Version(installed) == Version(pinned)
        print(f"  {name}: pinned {pinned}, installed {installed}{'' if ok else '  <-- MISMATCH'}")
        if not ok:
            wrong.append(name)
    if wrong:
        print(f"{constraints}: installed versions differ from the pins: {', '.join(wrong)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"] and len(argv) == 2:
        return check(Path(argv[1]))
    if argv:
        print("usage: min_constraints.py [--check CONSTRAINTS_FILE]", file=sys.stderr)
        return 2
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    print("# declared floors of pyproject.toml's dependencies (scripts/min_constraints.py)")
    for pin in floors(project["dependencies"]):
        print(pin)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
