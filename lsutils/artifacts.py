"""Atomic, self-describing run artifacts.

Every result a notebook hands to a later one lives at
``<data_root>/runs/<profile>/<stage>/<name>`` beside a JSON sidecar
``<name>.meta.json`` holding the parameters, seed, profile, versions and commit
that produced it, and the SHA-256 of the data file, checked on every load (a flipped
bit or an edited digit is refused, never read). Both files are written to temporary
names in the same folder and renamed into place under a folder lock (data first,
sidecar last), so an interrupted or concurrent write never leaves a file that looks
finished: an artifact *exists* only when its sidecar does. Writing what is already
there changes nothing, so a finished, read-only data folder can be read again.

Loading a missing artifact raises :class:`ArtifactMissingError` naming the
notebook that produces its stage; an unreadable one raises
:class:`ArtifactCorruptError`.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "pinns" / "beta1_seed0.pt"
    >>> _ = save_torch(path, {"w": torch.zeros(3)}, params={"beta": 1.0}, seed=0)
    >>> load_torch(path)["w"].tolist(), read_meta(path)["params"], matches(path, {"beta": 1.0})
    ([0.0, 0.0, 0.0], {'beta': 1.0}, True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from .paths import data_root
from .repro import environment_record

__all__ = [
    "STAGES", "ArtifactError", "ArtifactMissingError", "ArtifactCorruptError",
    "stage_dir", "sidecar_path", "exists", "read_meta",
    "save_torch", "load_torch", "save_json", "load_json", "save_npz", "load_npz",
    "remove", "producer_hint", "digest", "matches", "stale_temp_files",
]

#: stage folder -> the notebook that writes it (the data flow of DESIGN.md).
STAGES: dict[str, str] = {
    "resnets": "01_train_resnets",
    "pinns": "02_train_pinns",
    "hessian": "03_hessian",
    "landscapes": "04_landscapes",
    "topology": "05_topology",
    "jump_retrain": "06_jump_and_retrain",
    "connectivity": "07_connectivity",
    "taxonomy": "08_taxonomy",
    "training_geometry": "09_training_geometry",
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


def digest(obj: Any) -> str:
    """A short BLAKE2 digest of tensors, arrays, dicts, lists, dataclasses and scalars.

    Cache and resume keys are digests of every input a result depends on (weights, data,
    origin, directions, settings): two inputs that differ in one bit give different keys.
    Dict keys are taken in sorted order; a tensor contributes its dtype, shape and bytes.

    Example:
        >>> digest({"w": torch.zeros(2)}) == digest({"w": torch.zeros(2)})
        True
        >>> digest({"w": torch.zeros(2)}) == digest({"w": torch.tensor([0.0, 1e-30])})
        False
    """
    h = hashlib.blake2b(digest_size=12)
    _feed(h, obj)
    return h.hexdigest()


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(f"A{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    elif isinstance(obj, Mapping):
        h.update(b"{")
        for k in sorted(obj, key=str):
            h.update(repr(str(k)).encode())
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(type(obj).__name__.encode())
        _feed(h, dataclasses.asdict(obj))
    else:
        h.update(repr(_jsonable(obj)).encode())


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        return _jsonable(obj.item())
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return _jsonable(obj.item())
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return np.asarray(obj).tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj


def _as_json(obj: Any) -> Any:
    """``obj`` as it reads back from a sidecar (tuples become lists, paths strings)."""
    return json.loads(json.dumps(_jsonable(obj), sort_keys=True))


def matches(path: str | os.PathLike, params: dict[str, Any]) -> bool:
    """True when the artifact exists and was made with exactly ``params`` (its cache key)."""
    return exists(path) and read_meta(path).get("params") == _as_json(params)


_TMP = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.tmp$")


def _temp_file(path: Path, data: bytes) -> Path:
    """Write ``data`` to a fresh temporary file beside ``path``; its name carries our PID,
    so a cleanup never deletes a file another live process is still writing."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


@contextlib.contextmanager
def _folder_lock(folder: Path, exclusive: bool = True) -> Iterator[None]:
    """An advisory lock on a folder (``flock``; nothing where it is unavailable), so that an
    artifact and its sidecar are replaced, or read, together across processes."""
    try:
        import fcntl
    except ImportError:  # not POSIX: renames are still atomic one by one
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def stale_temp_files(root: Path, *, min_age: float = 600.0) -> list[Path]:
    """Temporary files of atomic writes under ``root`` whose writer is gone: its PID no longer
    runs on this machine (or, for a name without a PID, older than ``min_age`` seconds)."""
    out = []
    if not root.exists():
        return out
    now = time.time()
    for tmp in root.rglob(".*.tmp"):
        m = _TMP.match(tmp.name)
        if m:
            pid = int(m.group(1))
            if pid == os.getpid() or _alive(pid):
                continue
        else:
            try:
                if now - tmp.stat().st_mtime < min_age:
                    continue
            except OSError:
                continue
        out.append(tmp)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unchanged(path: Path, checksum: str, meta: dict[str, Any]) -> bool:
    if not exists(path):
        return False
    try:
        old = json.loads(sidecar_path(path).read_text())
    except (OSError, ValueError):
        return False
    same = all(old.get(k) == meta.get(k) for k in ("params", "seed", "profile", "sha256"))
    return same and _file_checksum(path) == checksum


def _file_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write(path: str | os.PathLike, data: bytes, *, params: dict | None, seed: int | None,
           profile: str | None, extra: dict | None) -> Path:
    """Write ``data`` and its sidecar (with the data's SHA-256) atomically.

    Both are written to temporary files first and renamed into place under a folder lock,
    data first and sidecar last, so an interrupted or concurrent write never leaves a
    sidecar vouching for other data. An artifact whose content and key are already in place
    is not rewritten (a finished, read-only data folder stays usable).
    """
    path = Path(path)
    checksum = hashlib.sha256(data).hexdigest()
    meta = _as_json({"artifact": path.name, "profile": profile, "seed": seed, "params": params or {},
                     "sha256": checksum})
    if _unchanged(path, checksum, meta):
        return path
    # No time stamp: the same inputs on the same commit give the same bytes, sidecar included.
    meta.update(_as_json({"environment": environment_record(), **(extra or {})}))
    meta["sha256"] = checksum
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_data = _temp_file(path, data)
    tmp_meta = None
    try:
        tmp_meta = _temp_file(sidecar_path(path), json.dumps(meta, indent=2, sort_keys=True).encode())
        with _folder_lock(path.parent):
            sidecar_path(path).unlink(missing_ok=True)
            os.replace(tmp_data, path)
            os.replace(tmp_meta, sidecar_path(path))
    finally:
        tmp_data.unlink(missing_ok=True)
        if tmp_meta is not None:
            tmp_meta.unlink(missing_ok=True)
    return path


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of an artifact (raises if missing or corrupt)."""
    p = Path(path)
    _check_exists(p)
    try:
        return json.loads(sidecar_path(p).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactCorruptError(f"corrupt sidecar {sidecar_path(p)}: {err}; delete it and rerun") from None


def _verified_bytes(p: Path) -> bytes:
    """The artifact's bytes, checked against the SHA-256 its sidecar records."""
    _check_exists(p)
    with _folder_lock(p.parent, exclusive=False):
        meta = read_meta(p)
        data = p.read_bytes()
    want = meta.get("sha256")
    if want is None:
        raise ArtifactCorruptError(f"artifact {p} has no checksum in its sidecar (written by an older "
                                   "lsutils); delete it and rerun the notebook that writes it")
    if hashlib.sha256(data).hexdigest() != want:
        raise ArtifactCorruptError(f"corrupt artifact {p}: its SHA-256 does not match the sidecar's "
                                   "(the file changed after it was written); delete it and rerun the "
                                   "notebook that writes it")
    return data


def save_torch(path: str | os.PathLike, obj: Any, *, params: dict | None = None,
               seed: int | None = None, profile: str | None = None,
               extra: dict | None = None) -> Path:
    """Save tensors / state dicts with ``torch.save``, atomically, with a sidecar."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return _write(path, buf.getvalue(), params=params, seed=seed, profile=profile, extra=extra)


def load_torch(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> Any:
    """Load what :func:`save_torch` wrote (tensors, dicts, lists, numbers only), verified."""
    p = Path(path)
    data = _verified_bytes(p)
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a damaged zip/pickle
        raise ArtifactCorruptError(f"corrupt artifact {p}: {type(err).__name__}: {err}; "
                                   "delete it and rerun the notebook that writes it") from None


def save_json(path: str | os.PathLike, obj: Any, *, params: dict | None = None,
              seed: int | None = None, profile: str | None = None,
              extra: dict | None = None) -> Path:
    """Save a JSON document atomically, with a sidecar."""
    text = json.dumps(_jsonable(obj), indent=2, sort_keys=True)
    return _write(path, text.encode(), params=params, seed=seed, profile=profile, extra=extra)


def load_json(path: str | os.PathLike) -> Any:
    """Load what :func:`save_json` wrote, verified."""
    p = Path(path)
    data = _verified_bytes(p)
    try:
        return json.loads(data.decode())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactCorruptError(f"corrupt artifact {p}: {err}; delete it and rerun") from None


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], *,
             params: dict | None = None, seed: int | None = None,
             profile: str | None = None, extra: dict | None = None) -> Path:
    """Save named arrays as an uncompressed ``.npz``, atomically, with a sidecar.

    The archive's entries carry a fixed date, so the same arrays give the same bytes.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(value), allow_pickle=False)
    return _write(path, buf.getvalue(), params=params, seed=seed, profile=profile, extra=extra)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load what :func:`save_npz` wrote, as a plain dict of arrays, verified."""
    p = Path(path)
    data = _verified_bytes(p)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as err:
        raise ArtifactCorruptError(f"corrupt artifact {p}: {type(err).__name__}: {err}; "
                                   "delete it and rerun the notebook that writes it") from None


def remove(path: str | os.PathLike) -> None:
    """Delete an artifact and its sidecar (sidecar first, so it never looks finished)."""
    p = Path(path)
    sidecar_path(p).unlink(missing_ok=True)
    p.unlink(missing_ok=True)
