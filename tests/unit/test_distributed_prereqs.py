"""The distributed suite names what it is missing instead of failing obscurely (its deployment module)."""

from __future__ import annotations

import pytest

from tests.distributed import deployment


def test_missing_python_module_is_named_with_its_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deployment, "PY_MODULES", {"no_such_module_xyz": "no-such-dist"})
    assert "Python module no_such_module_xyz (pip install no-such-dist)" in deployment.missing_pieces()


def test_without_root_nothing_is_installed_and_the_message_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deployment, "PY_MODULES", {"no_such_module_xyz": "no-such-dist"})
    monkeypatch.setattr(deployment, "_is_root", lambda: False)
    ran: list[object] = []
    monkeypatch.setattr(deployment.subprocess, "run", lambda *a, **k: ran.append(a))
    with pytest.raises(deployment.Missing) as missing:
        deployment.ensure_installed()
    assert "pip install no-such-dist" in str(missing.value)
    assert "root" in str(missing.value)
    assert "make test-distributed" in str(missing.value)
    assert ran == []  # no apt-get without root
