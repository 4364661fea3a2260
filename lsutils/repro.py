"""Reproducibility: seeds, the device, and a record of the environment.

The same profile and seed give the same numbers on the same machine: every
notebook calls :func:`seed_everything` in its Setup section and every artifact
carries :func:`environment_record` in its sidecar.

Example:
    >>> g = seed_everything(0)
    >>> choose_device("cpu")
    device(type='cpu')
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import random
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import torch

from .paths import repo_root

#: what ``device`` may be: ``auto`` picks CUDA, then MPS, then the CPU.
DEVICES = ("auto", "cpu", "cuda", "mps")

__all__ = ["seed_everything", "choose_device", "CPUWarning", "progress_bar",
           "environment_record", "git_commit", "tune_cpu_allocator"]


class CPUWarning(UserWarning):
    """A GPU-sized profile is running on a CPU."""


def seed_everything(seed: int, *, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and all GPUs).

    Args:
        seed: a non-negative integer.
        deterministic: turn cuDNN's autotuner off and its convolutions deterministic.
            ``torch.use_deterministic_algorithms`` is *not* enabled: several CUDA
            kernels have no deterministic version (it would raise there). CPU runs
            repeat bit for bit; GPU runs may differ in the last digits.

    Returns:
        A ``torch.Generator`` seeded with ``seed``, for DataLoaders and sampling
        that should not depend on the global state.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def choose_device(request: str = "auto", *, gpu_sized: bool = False) -> torch.device:
    """Pick the device for a profile.

    Args:
        request: ``auto`` (CUDA, then Apple MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
        gpu_sized: the profile is meant for a GPU; running it on the CPU warns
            with the expected cost.

    Returns:
        The ``torch.device``.

    Raises:
        ValueError: ``request`` is not one of the allowed names, or names an
            accelerator this machine does not have.
    """
    if request not in DEVICES:
        raise ValueError(f"device = {request!r}; allowed: {', '.join(DEVICES)}")
    if request == "auto":
        if torch.cuda.is_available():
            request = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            request = "mps"
        else:
            request = "cpu"
    if request == "cuda" and not torch.cuda.is_available():
        raise ValueError("device = 'cuda' but no CUDA GPU is visible; use device: auto or cpu")
    if request == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device = 'mps' but Apple MPS is not available; use device: auto or cpu")
    device = torch.device(request)
    if device.type == "cpu":
        tune_cpu_allocator()
    if device.type == "cpu" and gpu_sized:
        warnings.warn("this profile is sized for a GPU and is running on the CPU: expect hours, "
                      "not minutes (use the 'quick' profile on a laptop)", CPUWarning, stacklevel=2)
    return device


@functools.lru_cache(maxsize=1)
def tune_cpu_allocator(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30,
                       top_pad: int = 64 << 20) -> bool:
    """Keep freed tensor memory in the process instead of handing it back to the OS.

    With glibc's default malloc, every CPU tensor above 128 KiB is a fresh ``mmap`` and
    its first touch page-faults; batched grid points and training steps allocate such
    tensors by the thousand. Raising the mmap threshold (to its 32 MiB maximum), the trim
    threshold and the heap's top padding made the batched PINN loss 1.5x faster on the
    2-core machine this book is tested on; memory then stays at its peak until the
    process ends. :func:`choose_device` calls this when it picks the CPU; it is applied
    once per process and is a no-op (returning False) off Linux/glibc or when
    ``LSUTILS_KEEP_MALLOC=1``.

    Returns:
        Whether the settings were applied.
    """
    if not sys.platform.startswith("linux") or os.environ.get("LSUTILS_KEEP_MALLOC") == "1":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # glibc's mallopt parameters
    return all(libc.mallopt(param, value) == 1 for param, value in (
        (m_mmap_threshold, mmap_threshold), (m_trim_threshold, trim_threshold), (m_top_pad, top_pad)))


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The checkout's commit (with ``+dirty`` when it has changes), or None outside git."""
    try:
        root = repo_root()
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment_record(device: torch.device | str | None = None) -> dict[str, Any]:
    """Versions, device and commit, for artifact sidecars and notebook headers."""
    from . import __version__

    rec: dict[str, Any] = {
        "lsutils": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "commit": git_commit(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    if device is not None:
        dev = torch.device(device)
        rec["device"] = str(dev)
        if dev.type == "cuda":
            rec["gpu"] = torch.cuda.get_device_name(dev)
            rec["cuda"] = torch.version.cuda
    return rec


def progress_bar(iterable: Any = None, *, enabled: bool = True, **kwargs: Any) -> Any:
    """A tqdm bar, off when ``enabled`` is False or ``LSUTILS_NO_PROGRESS`` (set by the pipeline
    for the kernels it starts, so executed notebooks in the book carry no progress output) or
    ``TQDM_DISABLE`` is set."""
    from tqdm import tqdm

    off = not enabled or any(os.environ.get(k, "").lower() in ("1", "true", "yes")
                             for k in ("LSUTILS_NO_PROGRESS", "TQDM_DISABLE"))
    return tqdm(iterable, disable=off, **kwargs)
