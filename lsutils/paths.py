"""Where things live: the checkout, the profiles and the data root.

``LSUTILS_DATA`` names the data root (downloads in ``raw/``, run artifacts in
``runs/<profile>/<stage>/``); without it, ``<repo>/data`` in a checkout, or
``./data`` for an installed package (Colab). ``LSUTILS_PROFILES`` names another
folder of profile files.

Example:
    >>> (repo_root() / "pyproject.toml").exists() or not (repo_root() / "lsutils").exists()
    True
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["repo_root", "profiles_dir", "data_root"]


def repo_root() -> Path:
    """The checkout that holds this package (the folder with ``pyproject.toml``)."""
    return Path(__file__).resolve().parent.parent


def profiles_dir() -> Path:
    """``notebooks/profiles`` of the checkout, or ``LSUTILS_PROFILES`` when set."""
    env = os.environ.get("LSUTILS_PROFILES")
    return Path(env) if env else repo_root() / "notebooks" / "profiles"


def data_root() -> Path:
    """Where downloads (``raw/``) and run artifacts (``runs/``) live.

    ``LSUTILS_DATA`` wins; otherwise ``<repo>/data`` in a checkout, or ``./data``
    for an installed package (Colab).
    """
    env = os.environ.get("LSUTILS_DATA")
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    if (root / "pyproject.toml").exists():
        return root / "data"
    return Path.cwd() / "data"
