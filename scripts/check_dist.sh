#!/usr/bin/env bash
# `make dist-check` (and a step of .ci/run): what a user gets from PyPI works on its own.
#
#   scripts/check_dist.sh [TOOLS_PYTHON]
#
# 1. builds the sdist, and the wheel from that sdist (python -m build), into dist/;
# 2. `twine check --strict` on both, checks that LICENSE, py.typed and the simulator's sample
#    video are inside, and that the wheel's METADATA has the classifiers and project URLs
#    (scripts/check_metadata.py);
# 3. installs the BUILT WHEEL (no source checkout on sys.path) into a fresh venv with only its
#    runtime dependencies plus apache-airflow==$AIRFLOW_VERSION;
# 4. from a folder outside the repository: `airflow providers get airflow-provider-modelslab`,
#    `python -m modelslab_provider.simulator --help`, and the example text-to-video DAG end to end
#    (airflow dags test against the simulator the wheel ships), then compares the stored video
#    with the wheel's sample byte for byte.
#
# TOOLS_PYTHON: an interpreter with `build` and `twine` (the dev extra); default: python3.
# Environment: DIST_PYTHON (interpreter for the fresh venv, default python3), AIRFLOW_VERSION
# (default 3.3.2), DIST_VENV (default .venv-dist, recreated every run), CONSTRAINTS (optional pip
# constraints file for that venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$PWD"

TOOLS_PYTHON="${1:-python3}"
DIST_PYTHON="${DIST_PYTHON:-python3}"
AIRFLOW_VERSION="${AIRFLOW_VERSION:-3.3.2}"
DIST_VENV="${DIST_VENV:-.venv-dist}"
CONSTRAINTS="${CONSTRAINTS:-}"

say() { printf '[dist-check] %s\n' "$*"; }
fail() { printf '[dist-check] FAILED: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ build and inspect
rm -rf dist
work="$(mktemp -d "${TMPDIR:-/tmp}/modelslab-dist.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# Build from a copy of the files git would ship (tracked, plus new files not ignored): setuptools
# writes *.egg-info and build/ next to the sources, which must not disturb test runs in this
# checkout, and a file missing from git cannot sneak into the release.
mkdir "$work/src"
git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$work/src"
say "python -m build (sdist, then the wheel from the sdist)"
"$TOOLS_PYTHON" -m build --outdir "$REPO/dist" "$work/src" >"$work/build.log" 2>&1 \
    || { tail -40 "$work/build.log"; fail "python -m build"; }
shopt -s nullglob
wheels=(dist/*.whl)
sdists=(dist/*.tar.gz)
[ "${#wheels[@]}" -eq 1 ] && [ "${#sdists[@]}" -eq 1 ] || fail "expected one wheel and one sdist in dist/"
wheel="${wheels[0]}"
sdist="${sdists[0]}"
say "built $(basename "$sdist") and $(basename "$wheel")"

"$TOOLS_PYTHON" -m twine check --strict "$sdist" "$wheel"

# the files users need, by name inside each archive
"$TOOLS_PYTHON" - "$wheel" "$sdist" <<'EOF'
import sys, tarfile, zipfile
wheel, sdist = sys.argv[1:]
names = zipfile.ZipFile(wheel).namelist()
need = {
    "LICENSE (dist-info/licenses)": lambda n: n.endswith(".dist-info/licenses/LICENSE"),
    "modelslab_provider/py.typed": lambda n: n == "modelslab_provider/py.typed",
    "simulator sample video": lambda n: n.startswith("modelslab_provider/simulator/data/") and n.endswith(".mp4"),
    "provider entry point": lambda n: n.endswith(".dist-info/entry_points.txt"),
}
missing = [what for what, found in need.items() if not any(found(n) for n in names)]
if any(n.startswith(("tests/", "dags_examples/", "benchmarks/")) for n in names):
    missing.append("(the wheel must not ship tests, examples or benchmarks)")
meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
if "License-Expression: Apache-2.0" not in meta or "License-File: LICENSE" not in meta:
    missing.append("METADATA License-Expression / License-File")
members = tarfile.open(sdist).getnames()
if not any(m.endswith("/LICENSE") and m.count("/") == 1 for m in members):
    missing.append("LICENSE in the sdist")
if missing:
    sys.exit("[dist-check] FAILED: missing from the distributions: " + ", ".join(missing))
print(f"[dist-check] wheel has LICENSE, py.typed, the sample video, the entry point; sdist has LICENSE")
EOF
# PyPI's sidebar and search: classifier groups and project URLs (Documentation, Changelog, ...)
"$TOOLS_PYTHON" scripts/check_metadata.py "$wheel"

# ------------------------------------------------------------------ fresh venv from the wheel
say "fresh venv $DIST_VENV ($("$DIST_PYTHON" -V 2>&1)): the wheel + apache-airflow==$AIRFLOW_VERSION"
rm -rf "$DIST_VENV"
"$DIST_PYTHON" -m venv "$DIST_VENV"
VPY="$REPO/$DIST_VENV/bin/python"
"$VPY" -m pip install --quiet --upgrade pip
"$VPY" -m pip install --quiet ${CONSTRAINTS:+-c "$CONSTRAINTS"} "$REPO/$wheel" "apache-airflow==$AIRFLOW_VERSION"

# everything below runs from a folder outside the repository, so only the installed wheel can be imported
cp -r "$REPO/dags_examples" "$work/dags_examples"
mkdir -p "$work/scripts"
cp "$REPO/scripts/demo.py" "$work/scripts/demo.py"
cd "$work"
export AIRFLOW_HOME="$work/airflow"

"$VPY" - <<'EOF'
import importlib.resources, sys
import modelslab_provider
where = modelslab_provider.__file__
if "site-packages" not in where:
    sys.exit(f"[dist-check] FAILED: modelslab_provider imported from {where}, not from the installed wheel")
root = importlib.resources.files("modelslab_provider")
assert root.joinpath("py.typed").is_file(), "py.typed is not installed"
print(f"[dist-check] modelslab_provider {modelslab_provider.__version__} from {where}; py.typed installed")
EOF

say "airflow providers get airflow-provider-modelslab"
"$REPO/$DIST_VENV/bin/airflow" providers get airflow-provider-modelslab -o plain 2>/dev/null | tee "$work/providers.txt"
grep -q "airflow-provider-modelslab" "$work/providers.txt" || fail "Airflow does not list the provider"

say "python -m modelslab_provider.simulator --help"
"$VPY" -m modelslab_provider.simulator --help >"$work/sim-help.txt"
head -3 "$work/sim-help.txt"
grep -q -- "--port" "$work/sim-help.txt" || fail "the simulator's --help does not describe --port"

say "example_text_to_video end to end (airflow dags test against the wheel's simulator)"
"$VPY" "$work/scripts/demo.py" --home "$AIRFLOW_HOME" || fail "the example DAG did not run to success"

"$VPY" - "$AIRFLOW_HOME/modelslab-videos" <<'EOF'
import importlib.resources, pathlib, sys
folder = pathlib.Path(sys.argv[1])
sample = importlib.resources.files("modelslab_provider.simulator").joinpath("data", "sample.mp4").read_bytes()
stored = sorted(folder.glob("*.mp4"))
if not stored or any(p.read_bytes() != sample for p in stored):
    sys.exit(f"[dist-check] FAILED: expected the wheel's sample video in {folder}, found {[p.name for p in stored]}")
print(f"[dist-check] stored {len(stored)} file(s) identical to the wheel's sample.mp4 ({len(sample)} bytes)")
EOF
say "OK: $(basename "$sdist") and $(basename "$wheel") pass"
