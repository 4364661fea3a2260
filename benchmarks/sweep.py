"""Benchmark: the same 8-cell sweep serial and on a local Dask cluster of two processes.

Each cell trains a small 1-D ResNet-8 on MNIST-1D for a few epochs, at widths k = 2, 4, 8 and 16
and two seeds (chapter 8's kind of cell).
Three timings, each in a fresh data folder so every cell runs:

(a) ``serial``: the cells one after another in this process, with torch's own thread count
    (every core for one cell);
(b) ``local:2``: a Dask ``LocalCluster`` of two single-threaded worker processes: a fresh
    cluster, its start and the workers' first imports included (what a chapter pays), then the
    same sweep again on the warm workers;
(c) the overhead per cell: eight cells that do nothing on a running cluster.

The speed-up is (a) / (b). Usage::

    python benchmarks/sweep.py            # a table
    python benchmarks/sweep.py --json     # the same figures as one JSON object
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import torch

from lsutils.data import load_dataset
from lsutils.models import ResNetSpec
from lsutils.sweep import Cell, SquareTask, open_executor, run_sweep
from lsutils.train import TrainConfig, TrainTask


def timed_sweep(cells, task, executor, threads=-1) -> float:
    os.environ["LSUTILS_DATA"] = tempfile.mkdtemp(prefix="lsutils-bench-")
    t = time.perf_counter()
    res = run_sweep(cells, task, "cpu", executor=executor, profile="bench", threads=threads, progress=False)
    seconds = time.perf_counter() - t
    assert res.ran == len(cells) and not res.failures, res.failures
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=2, help="seeds per width (default 2: 8 cells)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs per cell (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    data = load_dataset("mnist1d", num_samples=2500).subset(2000, 500)
    specs = {f"k{k}": ResNetSpec(8, skip=True, dim=1, in_channels=1, base_channels=k) for k in (2, 4, 8, 16)}
    task = TrainTask(specs, data, TrainConfig(epochs=a.epochs, batch_size=32, lr=0.05, augment=False), "bench")
    cells = task.cells(range(a.seeds))
    a.cells = len(cells)
    res = {"cells": a.cells, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
           "torch": torch.__version__, "serial_s": timed_sweep(cells, task, "serial"),
           "serial_1thread_s": timed_sweep(cells, task, "serial", threads=1)}
    t = time.perf_counter()
    with open_executor("local:2") as client:
        res["cluster_start_s"] = time.perf_counter() - t
        res["local2_cold_s"] = timed_sweep(cells, task, client)  # the workers import torch and lsutils first
        res["local2_warm_s"] = timed_sweep(cells, task, client)
        empty = [Cell("taxonomy", f"e{i}", {"x": i}) for i in range(a.cells)]
        res["overhead_per_cell_s"] = timed_sweep(empty, SquareTask("bench"), client) / a.cells
    res["local2_s"] = res["cluster_start_s"] + res["local2_cold_s"]
    res["speedup"] = res["serial_s"] / res["local2_s"]
    res["speedup_warm"] = res["serial_s"] / res["local2_warm_s"]
    res["serial_empty_per_cell_s"] = timed_sweep(empty, SquareTask("bench"), "serial") / a.cells
    if a.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{a.cells} cells, each a ResNet-8 (k = 2 to 16, batch 32) trained {a.epochs} epochs on 2,000 MNIST-1D "
          "samples; "
          f"{res['cpu_count']} cores")
    print(f"  serial, {res['threads']} torch threads             {res['serial_s']:7.1f} s")
    print(f"  serial, 1 torch thread              {res['serial_1thread_s']:7.1f} s")
    print(f"  local:2, a fresh cluster (2 x 1)    {res['local2_s']:7.1f} s   speed-up {res['speedup']:.2f}x "
          f"(start {res['cluster_start_s']:.1f} s, first cells import torch)")
    print(f"  local:2, warm workers               {res['local2_warm_s']:7.1f} s   speed-up {res['speedup_warm']:.2f}x")
    print(f"  overhead per cell on a running cluster {1000 * res['overhead_per_cell_s']:.0f} ms "
          f"(serial: {1000 * res['serial_empty_per_cell_s']:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
