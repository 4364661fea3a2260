"""Sweeps: many independent cells (trained models, grid blocks) on one executor.

A *sweep* is a list of :class:`Cell` s, each a stage, a readable name and JSON-able
parameters (its seed is ``params["seed"]`` when given, else derived from the
parameters). A *task* (any picklable callable ``task(cell, device) -> metrics``) does a
cell's work, writing what it produces through :mod:`lsutils.artifacts`, and returns small
metrics (numbers). :func:`run_sweep` records each finished cell as one JSON artifact,
``<stage>/cells/<name>.json`` with the cell's parameters as its key, and skips the cells
whose record matches: an interrupted sweep resumes with the missing cells only, and a cell
whose parameters changed runs again.

The executor is named by a profile parameter and only it changes between a laptop and a
cluster (the cells, tasks and artifacts are the same):

- ``serial``: in this process, one cell after another (the default);
- ``local:N``: a Dask ``LocalCluster`` of ``N`` worker processes with one thread each
  (several torch processes sharing cores with many threads each run 10x slower);
- ``tcp://host:8786`` (or ``tls://``, ``ucx://``): a running Dask scheduler, e.g. a SLURM
  allocation started with dask-jobqueue or a multi-GPU node with dask-cuda;
- a path to a Dask scheduler file (``*.json``);
- any :class:`concurrent.futures.Executor` or ``distributed.Client`` object.

Every cell runs in :func:`run_cell`, which sets the worker's torch thread count and seeds
Python, NumPy and torch with the cell's seed first, so a cell gives the same bytes on any
executor at the same thread count (the count is part of each sidecar's environment record).
A cell that raises is reported by name with its error while the others go on; Dask retries
a cell whose worker died, and atomic writes mean a retried cell neither loses nor
duplicates an artifact. Workers must see the same data root (a shared file system on a
cluster).

Example:
    >>> cells = [Cell("taxonomy", f"square_{i}", {"x": i}) for i in range(3)]
    >>> result = run_sweep(cells, SquareTask("doc"), "cpu", executor="serial", profile="doc", progress=False)
    >>> [result.metrics[c.name]["y"] for c in cells], result.ran
    ([0.0, 1.0, 4.0], 3)
    >>> run_sweep(cells, SquareTask("doc"), "cpu", executor="serial", profile="doc", progress=False).ran  # finished
    0
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from . import artifacts
from .paths import data_root
from .repro import DEVICES, choose_device, progress_bar, seed_everything

__all__ = ["Cell", "SweepResult", "SweepError", "run_sweep", "run_cell", "record_path", "is_finished", "executor_kind",
           "open_executor", "map_unordered", "SquareTask", "EXECUTOR_HELP"]

EXECUTOR_HELP = "serial, local:N (N >= 1), tcp://host:port (a Dask scheduler), or a scheduler file (*.json)"


@dataclass(frozen=True)
class Cell:
    """One unit of a sweep.

    Attributes:
        stage: the stage folder its artifacts go to (one of :data:`lsutils.artifacts.STAGES`).
        name: readable and unique in the sweep (``resnet20_skip_seed0``, ``w4_b32_seed1``).
        params: JSON-able inputs; every input that changes the result (the record's key).
    """

    stage: str
    name: str
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def seed(self) -> int:
        """``params["seed"]`` when given, else 31 bits of the parameters' digest."""
        if "seed" in self.params:
            return int(self.params["seed"])
        return int(artifacts.digest(dict(self.params))[:8], 16) & 0x7FFFFFFF


@dataclass
class SweepResult:
    """What a sweep returns: metrics of every finished cell (by name), the failures (name ->
    error text), how many cells ran now and the seconds it took."""

    metrics: dict[str, dict[str, Any]]
    failures: dict[str, str]
    ran: int
    seconds: float


class SweepError(RuntimeError):
    """Some cells failed; the others finished and are recorded."""

    def __init__(self, failures: Mapping[str, str]) -> None:
        self.failures = dict(failures)
        lines = [f"  cell {name}: {err.strip().splitlines()[-1]}" for name, err in self.failures.items()]
        super().__init__(f"{len(self.failures)} cell(s) failed (the others finished and are recorded; "
                         "rerun to retry the failed ones):\n" + "\n".join(lines))


def record_path(cell: Cell, profile: str) -> Path:
    """The record of a finished cell: ``<data>/runs/<profile>/<stage>/cells/<name>.json``."""
    return artifacts.stage_dir(profile, cell.stage) / "cells" / f"{cell.name}.json"


def executor_kind(spec: Any) -> str:
    """``serial``, ``local``, ``address``, ``file`` or ``object``; raises ``ValueError`` naming
    ``executor`` and the allowed values for anything else."""
    if isinstance(spec, cf.Executor) or hasattr(spec, "submit") and not isinstance(spec, str):
        return "object"
    if not isinstance(spec, str):
        raise ValueError(f"executor = {spec!r}; allowed: {EXECUTOR_HELP}, or an Executor object")
    if spec == "serial":
        return "serial"
    if spec.startswith("local:"):
        n = spec[len("local:"):]
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"executor = {spec!r}; allowed: {EXECUTOR_HELP}")
        return "local"
    if "://" in spec:
        return "address"
    if spec.endswith(".json"):
        return "file"
    raise ValueError(f"executor = {spec!r}; allowed: {EXECUTOR_HELP}")


@contextlib.contextmanager
def open_executor(spec: Any) -> Iterator[Any]:
    """The executor ``spec`` names, opened for the duration of the block: ``None`` for
    ``serial``, else an object with ``submit`` (a Dask ``Client`` or the given executor).
    A ``local:N`` cluster is started here and shut down after."""
    kind = executor_kind(spec)
    if kind == "serial":
        yield None
        return
    if kind == "object":
        yield spec
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - installed with the package
        raise ImportError(f"executor = {spec!r} needs Dask: pip install distributed") from err
    if kind == "local":
        import logging

        cluster = LocalCluster(n_workers=int(spec.split(":")[1]), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    client = Client(spec) if kind == "address" else Client(scheduler_file=spec)
    try:
        yield client
    finally:
        client.close()


def _submit(pool: Any, fn: Callable[..., Any], *args: Any, key: str) -> Any:
    if hasattr(pool, "scheduler"):  # a Dask client: not pure (every cell runs), a readable key
        return pool.submit(fn, *args, pure=False, key=f"{key}-{os.urandom(4).hex()}")
    return pool.submit(fn, *args)


def _completed(pool: Any, futures: Sequence[Any]) -> Iterator[Any]:
    if hasattr(pool, "scheduler"):
        from distributed import as_completed

        return iter(as_completed(futures))
    return cf.as_completed(futures)


def map_unordered(pool: Any, fn: Callable[..., Any], jobs: Sequence[tuple[str, tuple]]) -> Iterator[tuple[str, Any]]:
    """``(name, fn(*args))`` for every ``(name, args)`` of ``jobs`` as each finishes: in this
    process, in order, when ``pool`` is None; else on the pool, in the order they finish. An
    exception a job raises (or a worker lost more often than Dask allows) is yielded as the
    result, not raised."""
    if pool is None:
        for name, args in jobs:
            try:
                yield name, fn(*args)
            except Exception as err:  # reported by the caller, the other jobs go on
                yield name, err
        return
    futures = {}
    for name, args in jobs:
        futures[_submit(pool, fn, *args, key=name)] = name
    for fut in _completed(pool, list(futures)):
        try:
            yield futures[fut], fut.result()
        except Exception as err:
            yield futures[fut], err


def run_cell(task: Callable[[Cell, torch.device], Mapping[str, Any]], cell: Cell, profile: str, device: str,
             threads: int | None, root: str) -> tuple[str, Any]:
    """Run one cell where it lands (this process or a worker) and record it.

    Sets the torch thread count (``None``: leave it), the data root and the cell's seed, runs
    ``task(cell, device)`` and writes the record. Returns ``("ok", metrics)`` or
    ``("error", traceback)``: a failing cell never stops the sweep.
    """
    old_root, old_threads = os.environ.get("LSUTILS_DATA"), torch.get_num_threads()
    os.environ["LSUTILS_DATA"] = root
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        seed_everything(cell.seed)
        where = choose_device(device) if device in DEVICES else torch.device(device)  # "auto": the worker's own
        metrics = dict(task(cell, where))
        # no time or host in the record: the same cell gives the same bytes on any executor
        artifacts.save_json(record_path(cell, profile), {"metrics": metrics}, params=dict(cell.params),
                            seed=cell.seed, profile=profile, extra={"device": device})
        return "ok", metrics
    except Exception:
        return "error", traceback.format_exc()
    finally:
        torch.set_num_threads(old_threads)
        if old_root is None:
            os.environ.pop("LSUTILS_DATA", None)
        else:
            os.environ["LSUTILS_DATA"] = old_root


def is_finished(cell: Cell, profile: str) -> bool:
    """Whether ``cell`` has a record made with exactly its parameters (a sweep skips it)."""
    return artifacts.matches(record_path(cell, profile), dict(cell.params))


def _finished(cell: Cell, profile: str) -> dict[str, Any] | None:
    if not is_finished(cell, profile):
        return None
    try:
        return artifacts.load_json(record_path(cell, profile))["metrics"]
    except artifacts.ArtifactError:
        return None


def run_sweep(cells: Sequence[Cell], task: Callable[[Cell, torch.device], Mapping[str, Any]],
              device: torch.device | str = "cpu", *, executor: Any = "serial", profile: str,
              threads: int | None = -1, progress: bool = True, raise_errors: bool = True,
              desc: str = "sweep") -> SweepResult:
    """Run every unfinished cell of ``cells`` with ``task`` on ``executor``.

    Args:
        cells: the sweep; names must be unique.
        task: picklable ``task(cell, device) -> metrics`` (a module-level function or an
            instance of a module-level class); it writes the cell's artifacts.
        device: where each cell computes: a device, or a request (``auto``, ``cuda``) that each worker
            resolves for itself (on a dask-cuda worker ``cuda`` is its own GPU).
        executor: ``serial``, ``local:N``, a scheduler address or file, or an executor object.
        profile: the profile whose folders the records go to.
        threads: torch threads per cell; ``-1`` (default): leave the process's own count when
            serial, one per worker otherwise; ``None``: never change it.
        progress: a bar over finished cells.
        raise_errors: raise :class:`SweepError` naming the failed cells after all others finished.

    Returns:
        The :class:`SweepResult`; the metrics of cells finished before come from their records.
    """
    dup = sorted(n for n, k in Counter(c.name for c in cells).items() if k > 1)
    if dup:
        raise ValueError(f"cells: the name {dup[0]!r} appears more than once; allowed: unique names")
    kind = executor_kind(executor)
    if threads == -1:
        threads = None if kind == "serial" else 1
    t0 = time.perf_counter()
    metrics: dict[str, dict[str, Any]] = {}
    todo = []
    for cell in cells:
        done = _finished(cell, profile)
        if done is None:
            todo.append(cell)
        else:
            metrics[cell.name] = done
    failures: dict[str, str] = {}
    root = str(data_root())
    if todo:
        jobs = [(c.name, (task, c, profile, str(device), threads, root)) for c in todo]
        bar = progress_bar(total=len(todo), desc=desc, enabled=progress, unit="cell")
        with open_executor(executor) as pool:
            for name, out in map_unordered(pool, run_cell, jobs):
                if isinstance(out, BaseException):  # lost by the executor (e.g. a worker killed too often)
                    out = ("error", f"{type(out).__name__}: {out}")
                status, value = out
                if status == "ok":
                    metrics[name] = value
                else:
                    failures[name] = value
                    bar.write(f"cell {name} failed: {value.strip().splitlines()[-1]}")
                bar.update(1)
                bar.set_postfix(failed=len(failures))
        bar.close()
    metrics = {c.name: metrics[c.name] for c in cells if c.name in metrics}  # in the sweep's order
    result = SweepResult(metrics, failures, len(todo), time.perf_counter() - t0)
    if failures and raise_errors:
        raise SweepError(failures)
    return result


@dataclass(frozen=True)
class SquareTask:
    """A task for examples, tests and benchmarks: ``y = x ** 2`` of ``params["x"]`` after
    ``params.get("work", 0)`` seconds of 256 x 256 matrix products, written with a seeded
    random tensor as the cell's artifact ``<stage>/square/<name>.pt`` of ``profile``."""

    profile: str

    def __call__(self, cell: Cell, device: torch.device) -> dict[str, Any]:
        x = float(cell.params["x"])
        a = torch.randn(256, 256, device=device)
        end = time.perf_counter() + float(cell.params.get("work", 0.0))
        while time.perf_counter() < end:
            a = torch.tanh(a @ a / 16)
        artifacts.save_torch(artifacts.stage_dir(self.profile, cell.stage) / "square" / f"{cell.name}.pt",
                             {"y": torch.tensor(x * x), "noise": torch.randn(4)}, params=dict(cell.params),
                             seed=cell.seed, profile=self.profile)
        return {"y": x * x}
