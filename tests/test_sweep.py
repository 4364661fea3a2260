"""Sweeps on every executor give the same artifacts; they resume, survive a killed worker and
report a failing cell by name; a landscape grid in blocks equals the one-process grid."""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import torch

from lsutils import artifacts
from lsutils.data import load_dataset
from lsutils.directions import random_direction
from lsutils.landscape import evaluate_grid, grid_axes
from lsutils.models import ResNetSpec
from lsutils.objectives import ClassifierObjective
from lsutils.sweep import Cell, SquareTask, SweepError, executor_kind, record_path, run_sweep
from lsutils.train import TrainConfig, TrainTask

# the tasks below travel to worker processes by value (this module is not importable there)
cloudpickle.register_pickle_by_value(sys.modules[__name__])

PROFILE = "sweeptest"


@pytest.fixture(scope="module")
def client():
    """One Dask LocalCluster of two single-threaded worker processes for this module."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _tiny_training() -> TrainTask:
    data = load_dataset("mnist1d", num_samples=300)
    specs = {s.name: s for s in (ResNetSpec(8, skip=True, dim=1, in_channels=1, base_channels=4),
                                 ResNetSpec(8, skip=False, dim=1, in_channels=1, base_channels=4))}
    return TrainTask(specs, data, TrainConfig(epochs=2, batch_size=64, lr=0.05), PROFILE)


def _square_cells(n: int = 6) -> list[Cell]:
    return [Cell("taxonomy", f"sq{i}", {"x": i}) for i in range(n)]


def test_local_cluster_equals_serial_bit_for_bit(data_root, monkeypatch):
    """Two ResNet trainings and six seeded cells on ``local:2`` write the same bytes as the serial
    sweep at the same thread count. Only ``final.json`` of a training run (and the checksum in its
    sidecar) differs: it keeps the run's wall time (its weights, ``epoch_*.pt`` and ``resume.pt``,
    are compared)."""
    train = _tiny_training()
    out = {}
    for executor in ("serial", "local:2"):
        monkeypatch.setenv("LSUTILS_DATA", str(data_root / executor.replace(":", "")))
        square = SquareTask(PROFILE)
        res = run_sweep(_square_cells(), square, executor=executor, profile=PROFILE, threads=1, progress=False)
        res2 = run_sweep(train.cells([0]), train, executor=executor, profile=PROFILE, threads=1, progress=False)
        assert res.ran == 6 and res2.ran == 2 and not res.failures and not res2.failures
        out[executor] = (res.metrics, res2.metrics, _files(data_root / executor.replace(":", "")))
    (m1, t1, f1), (m2, t2, f2) = out["serial"], out["local:2"]
    assert m1 == m2 and t1 == t2
    assert f1.keys() == f2.keys() and len(f1) > 30
    differ = sorted(k for k in f1 if f1[k] != f2[k])
    assert all(k.endswith(("final.json", "final.json.meta.json")) for k in differ), differ
    assert any(k.endswith("epoch_002.pt") for k in f1)


def test_interrupted_sweep_runs_only_the_missing_cells(data_root):
    square = SquareTask(PROFILE)
    cells = _square_cells(6)

    class Interrupt:  # a Ctrl-C during the fourth cell
        def __init__(self) -> None:
            self.calls = 0

        def __call__(self, cell, device):
            self.calls += 1
            if self.calls == 4:
                raise KeyboardInterrupt
            return square(cell, device)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(cells, Interrupt(), profile=PROFILE, progress=False)
    assert [artifacts.exists(record_path(c, PROFILE)) for c in cells] == [True] * 3 + [False] * 3
    counted = Counting(square)
    res = run_sweep(cells, counted, profile=PROFILE, progress=False)
    assert res.ran == 3 and counted.names == ["sq3", "sq4", "sq5"]
    assert [res.metrics[c.name]["y"] for c in cells] == [float(i * i) for i in range(6)]
    # a changed input runs that cell again, and only it
    changed = cells[:5] + [Cell("taxonomy", "sq5", {"x": 7})]
    counted = Counting(square)
    res = run_sweep(changed, counted, profile=PROFILE, progress=False)
    assert counted.names == ["sq5"] and res.metrics["sq5"]["y"] == 49.0


class Counting:
    def __init__(self, task) -> None:
        self.task, self.names = task, []

    def __call__(self, cell, device):
        self.names.append(cell.name)
        return self.task(cell, device)


class DieOnce:
    """Kills its worker process the first time it runs ``victim`` (a file marks the attempt)."""

    def __init__(self, victim: str, marker: Path) -> None:
        self.victim, self.marker, self.square = victim, marker, SquareTask(PROFILE)

    def __call__(self, cell, device):
        with open(self.marker.with_name(f"attempt_{cell.name}_{os.getpid()}"), "w"):
            pass
        if cell.name == self.victim and not self.marker.exists():
            self.marker.touch()
            os._exit(1)  # the worker dies mid-cell, as on a preempted node
        return self.square(cell, device)


def test_killed_worker_loses_and_duplicates_nothing(data_root, client, monkeypatch, tmp_path):
    cells = [Cell("taxonomy", f"sq{i}", {"x": i, "work": 0.2}) for i in range(6)]
    marks = tmp_path / "marks"
    marks.mkdir()
    res = run_sweep(cells, DieOnce("sq2", marks / "died"), executor=client, profile=PROFILE, progress=False)
    assert (marks / "died").exists()  # the worker did die
    assert not res.failures and list(res.metrics) == [c.name for c in cells]
    assert len(list(marks.glob("attempt_sq2_*"))) >= 2  # retried by Dask on another worker process
    records = sorted((data_root / "runs" / PROFILE / "taxonomy" / "cells").glob("sq?.json"))
    assert [p.name for p in records] == [f"sq{i}.json" for i in range(6)]
    assert not artifacts.stale_temp_files(data_root, min_age=0)  # nothing half-written left behind
    got = _files(data_root / "runs")
    monkeypatch.setenv("LSUTILS_DATA", str(tmp_path / "serial"))
    ref = run_sweep(cells, SquareTask(PROFILE), executor="serial", profile=PROFILE, threads=1, progress=False)
    assert ref.metrics == res.metrics and _files(tmp_path / "serial" / "runs") == got


class FailOn:
    def __init__(self, bad: str) -> None:
        self.bad, self.square = bad, SquareTask(PROFILE)

    def __call__(self, cell, device):
        if cell.name == self.bad:
            raise ValueError("this cell's learning rate diverges")
        return self.square(cell, device)


@pytest.mark.parametrize("where", ["serial", "dask", "threads"])
def test_failing_cell_is_reported_by_name_and_the_others_finish(where, client, data_root):
    cells = _square_cells(5)
    executor = {"serial": "serial", "dask": client}.get(where)
    with cf.ThreadPoolExecutor(2) as pool:
        with pytest.raises(SweepError, match=r"cell sq3: ValueError: this cell's learning rate diverges") as err:
            run_sweep(cells, FailOn("sq3"), executor=executor or pool, profile=PROFILE, progress=False)
    assert list(err.value.failures) == ["sq3"]
    assert [artifacts.exists(record_path(c, PROFILE)) for c in cells] == [True, True, True, False, True]
    res = run_sweep(cells, FailOn("sq3"), profile=PROFILE, progress=False, raise_errors=False)
    assert res.ran == 1 and list(res.failures) == ["sq3"] and len(res.metrics) == 4


def test_grid_in_blocks_over_two_workers_equals_one_process(data_root, client):
    data = load_dataset("mnist1d", num_samples=300)
    torch.manual_seed(0)
    net = ResNetSpec(8, skip=True, dim=1, in_channels=1, base_channels=4).build().eval()
    obj = ClassifierObjective(net, data.x_train[:120], data.y_train[:120], batch_size=64, chunk_size=2)
    dirs = [random_direction(obj.params, 1), random_direction(obj.params, 2)]
    axes = grid_axes(7, 1.0, 2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' thread count
    try:
        one = evaluate_grid(obj, dirs, axes, path=data_root / "one" / "grid.npz", progress=False)
    finally:
        torch.set_num_threads(threads)
    blocks = evaluate_grid(obj, dirs, axes, path=data_root / "blocks" / "grid.npz", progress=False,
                           executor=client, n_blocks=5)
    for key in ("loss", "accuracy"):
        assert np.array_equal(one.values[key], blocks.values[key])
    assert (data_root / "one" / "grid.npz").read_bytes() == (data_root / "blocks" / "grid.npz").read_bytes()
    assert one.at_origin() == pytest.approx(obj.metrics()["loss"], rel=1e-6)


@pytest.mark.parametrize("bad", ["local:0", "local:x", "dask", "", 3])
def test_bad_executor_names_the_parameter(bad):
    with pytest.raises(ValueError, match=r"executor = .*allowed: serial, local:N"):
        executor_kind(bad)


def test_cell_seeds_and_unique_names():
    assert Cell("taxonomy", "a", {"seed": 3}).seed == 3
    a, b = Cell("taxonomy", "a", {"x": 1}).seed, Cell("taxonomy", "a", {"x": 2}).seed
    assert a != b and a == Cell("taxonomy", "z", {"x": 1}).seed and 0 <= a < 2**31
    with pytest.raises(ValueError, match="cells: the name 'a' appears more than once"):
        run_sweep([Cell("taxonomy", "a"), Cell("taxonomy", "a")], SquareTask(PROFILE), profile=PROFILE)
