"""Atomic, self-describing run artifacts.

Every result a notebook hands to a later one lives at
``<data_root>/runs/<profile>/<stage>/<name>`` beside a JSON sidecar
``<name>.meta.json`` holding the parameters, seed, profile, versions and commit
that produced it. Both files are written to a temporary name in the same folder
and renamed into place (data first, sidecar last), so an interrupted write never
leaves a file that looks finished: an artifact *exists* only when its sidecar
does.

Loading a missing artifact raises :class:`ArtifactMissingError` naming the
notebook that produces its stage; an unreadable one raises
:class:`ArtifactCorruptError`.

Example:
    >>> from lsutils import artifacts
    >>> path = artifacts.stage_dir("smoke", "pinns") / "beta1_seed0.pt"
    >>> artifacts.save_torch(path, {"w": torch.zeros(3)}, params={"beta": 1.0}, seed=0)
    >>> state = artifacts.load_torch(path)
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from .config import data_root
from .repro import environment_record

__all__ = [
    "STAGES", "ArtifactError", "ArtifactMissingError", "ArtifactCorruptError",
    "stage_dir", "sidecar_path", "exists", "read_meta",
    "save_torch", "load_torch", "save_json", "load_json", "save_npz", "load_npz",
    "remove", "producer_hint",
]

#: stage folder -> the notebook that writes it (the data flow of DESIGN.md).
STAGES: dict[str, str] = {
    "resnets": "01_train_resnets",
    "pinns": "02_train_pinns",
    "hessian": "03_hessian",
    "landscapes": "04_landscapes",
    "topology": "05_topology",
    "jump_retrain": "06_jump_and_retrain",
    "global": "07_global",
}

SIDECAR_SUFFIX = ".meta.json"


class ArtifactError(RuntimeError):
    """Base class of artifact errors."""


class ArtifactMissingError(ArtifactError, FileNotFoundError):
    """The artifact has not been produced (or its write never finished)."""


class ArtifactCorruptError(ArtifactError):
    """The artifact exists but cannot be read."""


def stage_dir(profile: str, stage: str, *, create: bool = False) -> Path:
    """``<data_root>/runs/<profile>/<stage>``.

    Raises:
        ValueError: ``stage`` is not one of :data:`STAGES`.
    """
    if stage not in STAGES:
        raise ValueError(f"stage = {stage!r}; allowed: {', '.join(STAGES)}")
    path = data_root() / "runs" / profile / stage
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar beside an artifact."""
    p = Path(path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def producer_hint(path: Path) -> str:
    """The sentence that tells which notebook writes ``path``."""
    parts = path.resolve().parts
    if "runs" in parts:
        i = len(parts) - 1 - parts[::-1].index("runs")
        if i + 2 < len(parts):
            profile, stage = parts[i + 1], parts[i + 2]
            nb = STAGES.get(stage)
            if nb:
                return (f"it is written by notebooks/{nb}.ipynb; run it first: "
                        f"python -m lsutils run --profile {profile} --only {nb[:2]}")
    return "no notebook is known to write it"


def exists(path: str | os.PathLike) -> bool:
    """True when the artifact and its sidecar were both written completely."""
    p = Path(path)
    return p.is_file() and sidecar_path(p).is_file()


def _check_exists(path: Path) -> None:
    if not exists(path):
        raise ArtifactMissingError(f"missing artifact {path}: {producer_hint(path)}")


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; rename it onto ``path`` on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return np.asarray(obj).tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj


def _write(path: str | os.PathLike, writer: Callable[[Path], None], *, params: dict | None,
           seed: int | None, profile: str | None, extra: dict | None) -> Path:
    path = Path(path)
    with _atomic(path) as tmp:
        writer(tmp)
        # The new data are complete; from here until the new sidecar lands, the old
        # sidecar must not vouch for them. A failure before this line keeps the old artifact.
        sidecar_path(path).unlink(missing_ok=True)
    meta = {
        "artifact": path.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "profile": profile,
        "seed": seed,
        "params": params or {},
        "environment": environment_record(),
    }
    if extra:
        meta.update(extra)
    with _atomic(sidecar_path(path)) as tmp:
        tmp.write_text(json.dumps(_jsonable(meta), indent=2, sort_keys=True))
    return path


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of an artifact (raises if missing or corrupt)."""
    p = Path(path)
    _check_exists(p)
    try:
        return json.loads(sidecar_path(p).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactCorruptError(f"corrupt sidecar {sidecar_path(p)}: {err}; delete it and rerun") from None


def save_torch(path: str | os.PathLike, obj: Any, *, params: dict | None = None,
               seed: int | None = None, profile: str | None = None,
               extra: dict | None = None) -> Path:
    """Save tensors / state dicts with ``torch.save``, atomically, with a sidecar."""
    return _write(path, lambda tmp: torch.save(obj, tmp), params=params, seed=seed,
                  profile=profile, extra=extra)


def load_torch(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> Any:
    """Load what :func:`save_torch` wrote (tensors, dicts, lists, numbers only)."""
    p = Path(path)
    _check_exists(p)
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a damaged zip/pickle
        raise ArtifactCorruptError(f"corrupt artifact {p}: {type(err).__name__}: {err}; "
                                   "delete it and rerun the notebook that writes it") from None


def save_json(path: str | os.PathLike, obj: Any, *, params: dict | None = None,
              seed: int | None = None, profile: str | None = None,
              extra: dict | None = None) -> Path:
    """Save a JSON document atomically, with a sidecar."""
    text = json.dumps(_jsonable(obj), indent=2, sort_keys=True)
    return _write(path, lambda tmp: tmp.write_text(text), params=params, seed=seed,
                  profile=profile, extra=extra)


def load_json(path: str | os.PathLike) -> Any:
    """Load what :func:`save_json` wrote."""
    p = Path(path)
    _check_exists(p)
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactCorruptError(f"corrupt artifact {p}: {err}; delete it and rerun") from None


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], *,
             params: dict | None = None, seed: int | None = None,
             profile: str | None = None, extra: dict | None = None) -> Path:
    """Save named arrays as an uncompressed ``.npz``, atomically, with a sidecar."""
    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})
    return _write(path, writer, params=params, seed=seed, profile=profile, extra=extra)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load what :func:`save_npz` wrote, as a plain dict of arrays."""
    p = Path(path)
    _check_exists(p)
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as err:
        raise ArtifactCorruptError(f"corrupt artifact {p}: {type(err).__name__}: {err}; "
                                   "delete it and rerun the notebook that writes it") from None


def remove(path: str | os.PathLike) -> None:
    """Delete an artifact and its sidecar (sidecar first, so it never looks finished)."""
    p = Path(path)
    sidecar_path(p).unlink(missing_ok=True)
    p.unlink(missing_ok=True)
