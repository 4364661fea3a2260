"""Docstring examples (``--doctest-modules`` over ``lsutils``) write under a temporary data root."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _doctest_data_root(request, tmp_path, monkeypatch):
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.setenv("LSUTILS_DATA", str(tmp_path / "data"))
