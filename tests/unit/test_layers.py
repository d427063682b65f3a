"""The layers of shared/design.md §2, read from the package's own imports with ``ast``.

Each module may import only the layers below it: the client core and the download package are
pure (no Airflow, nothing Airflow-side), hooks know nothing of triggers, sensors or operators,
triggers nothing of sensors or operators. Imports inside functions count (they are dependencies
too, only later); imports under ``if TYPE_CHECKING:`` count for the layers but not for cycles,
as they never run.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "modelslab_provider"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    type_only: bool


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name: str, source: str, is_package: bool, known: set[str]) -> list[Import]:
    """Every import in ``source`` (module ``name``), resolved to a module where it names one."""
    found: list[Import] = []

    def resolve(module: str | None, level: int) -> str:
        if not level:
            return module or ""
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[: len(base) - level + 1]
        return ".".join(base + ([module] if module else []))

    def walk(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                walk(child, True)
            for child in node.orelse:
                walk(child, type_only)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(name, alias.name, node.lineno, type_only) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = resolve(node.module, node.level)
            for alias in node.names:
                full = f"{module}.{alias.name}"
                found.append(Import(name, full if full in known else module, node.lineno, type_only))
        for child in ast.iter_child_nodes(node):
            walk(child, type_only)

    walk(ast.parse(source), False)
    return found


def package_imports(root: Path = ROOT) -> list[Import]:
    files = module_files(root)
    known = set(files)
    out = []
    for name, path in files.items():
        out.extend(imports_of(name, path.read_text(), path.name == "__init__.py", known))
    return out


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


P = PACKAGE
#: module prefix -> the only prefixes it may import from (of this package and of Airflow)
ALLOWED: dict[str, tuple[str, ...]] = {
    # the pure core: no Airflow, nothing Airflow-side
    f"{P}.client": (f"{P}.client",),
    f"{P}.download": (f"{P}.client", f"{P}.download"),
    f"{P}.simulator": (f"{P}.simulator", f"{P}.client"),
    # read by Airflow at startup: cheap and self-contained
    f"{P}.get_provider_info": (f"{P}.connection_form",),
    f"{P}.connection_form": (f"{P}.client",),
    f"{P}.version_compat": ("airflow",),
    # the Airflow side, each knowing only what lies below it
    f"{P}.hooks": ("airflow", f"{P}.client", f"{P}.connection_form"),
    f"{P}.events": ("airflow", f"{P}.client"),
    f"{P}.lineage": ("airflow", f"{P}.client", f"{P}.hooks"),
    # triggers.task_end: the Airflow line gates and the "is a lineage reader installed" check
    f"{P}.triggers": (
        "airflow",
        f"{P}.client",
        f"{P}.hooks",
        f"{P}.events",
        f"{P}.lineage",
        f"{P}.version_compat",
    ),
    f"{P}.sensors": (
        "airflow",
        f"{P}.client",
        f"{P}.hooks",
        f"{P}.events",
        f"{P}.triggers",
        f"{P}.version_compat",
    ),
    # the paid-job engine: below the operators, above the hook and the triggers
    f"{P}.jobs": (
        "airflow",
        f"{P}.client",
        f"{P}.hooks",
        f"{P}.events",
        f"{P}.lineage",
        f"{P}.triggers",
        f"{P}.version_compat",
    ),
    f"{P}.operators": (
        "airflow",
        f"{P}.jobs",
        f"{P}.client",
        f"{P}.download",
        f"{P}.hooks",
        f"{P}.events",
        f"{P}.lineage",
        f"{P}.triggers",
        f"{P}.version_compat",
    ),
}


def rule_of(module: str) -> str | None:
    matches = [prefix for prefix in ALLOWED if _under(module, prefix)]
    return max(matches, key=len) if matches else None


def layer_violations(imports: list[Import]) -> list[str]:
    """Imports of this package or Airflow that the importing module's layer does not allow."""
    out = []
    for item in imports:
        if not (_under(item.target, P) or _under(item.target, "airflow")) or item.target == P:
            continue  # the standard library, third parties, and the root package (its version)
        rule = rule_of(item.source)
        allowed = (rule,) + ALLOWED[rule] if rule else ()
        if not any(_under(item.target, prefix) for prefix in allowed):
            out.append(f"{item.source}:{item.line} imports {item.target}")
    return out


def cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected groups of more than one module among the imports that run."""
    graph: dict[str, set[str]] = {}
    for item in imports:
        if not item.type_only and _under(item.target, P) and item.target != item.source:
            graph.setdefault(item.source, set()).add(item.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


# ----- the package ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return package_imports()


def test_every_module_has_a_layer() -> None:
    """A new top-level module must be placed in ALLOWED (a decision, not an accident)."""
    unplaced = [m for m in module_files() if m != P and rule_of(m) is None]
    assert unplaced == []


def test_imports_point_only_down_the_layers(imports: list[Import]) -> None:
    assert layer_violations(imports) == []


def test_there_is_no_import_cycle(imports: list[Import]) -> None:
    assert cycles(imports) == []


def test_the_reader_sees_local_relative_and_type_only_imports(imports: list[Import]) -> None:
    """The checks above are only as good as this reader: it finds what is known to be there."""
    seen = {(i.source, i.target, i.type_only) for i in imports}
    # a function-local import (the trigger looks its hook up lazily)
    assert ("modelslab_provider.triggers.base", "modelslab_provider.hooks.modelslab", False) in seen
    # a type-only import
    assert ("modelslab_provider.lineage", "modelslab_provider.hooks.modelslab", True) in seen
    # ``from package import module`` names the module
    assert ("modelslab_provider.operators.storage", "modelslab_provider.download", False) in seen


# ----- the checks themselves can fail ------------------------------------------------------------


def _synthetic(tmp_path: Path, files: dict[str, str]) -> list[Import]:
    for relative, text in files.items():
        path = tmp_path / P / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package_imports(tmp_path / P)


def test_an_upward_or_airflow_import_is_reported(tmp_path: Path) -> None:
    imports = _synthetic(
        tmp_path,
        {
            "__init__.py": "",
            "client/__init__.py": "",
            "client/core.py": "from airflow.sdk import BaseHook\n",
            "hooks/__init__.py": "",
            "hooks/modelslab.py": "def f():\n    from ..triggers import video\n",
            "triggers/__init__.py": "",
            "triggers/video.py": "from modelslab_provider.operators.video import X\n",
            "operators/__init__.py": "",
            "operators/video.py": "X = 1\n",
        },
    )
    assert sorted(layer_violations(imports)) == [
        "modelslab_provider.client.core:1 imports airflow.sdk",
        "modelslab_provider.hooks.modelslab:2 imports modelslab_provider.triggers.video",
        "modelslab_provider.triggers.video:1 imports modelslab_provider.operators.video",
    ]


def test_a_cycle_is_reported_but_not_a_type_only_one(tmp_path: Path) -> None:
    imports = _synthetic(
        tmp_path,
        {
            "__init__.py": "",
            "client/__init__.py": "",
            "client/a.py": "from modelslab_provider.client import b\n",
            "client/b.py": "def f():\n    from . import a\n",
            "client/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n",
            "client/d.py": "from . import c\n",
        },
    )
    assert cycles(imports) == [["modelslab_provider.client.a", "modelslab_provider.client.b"]]
