"""Shared fixtures: every test writes its artifacts under a temporary data root."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def data_root(tmp_path, monkeypatch):
    """A fresh ``LSUTILS_DATA`` per test, so nothing touches ``data/``."""
    root = tmp_path / "data"
    monkeypatch.setenv("LSUTILS_DATA", str(root))
    return root


@pytest.fixture(autouse=True)
def _torch_state():
    """Keep the global torch state identical between tests."""
    dtype = torch.get_default_dtype()
    yield
    torch.set_default_dtype(dtype)
