"""Benchmark: merge tree, persistence pairs and summaries against gudhi's cubical persistence.

For 101x101, 201x201 and 41^3 grids, two kinds of field: a smooth landscape (a sum of
Gaussian wells on a bowl, with 1% noise) and white noise (the worst case: thousands of
minima). Each is timed as the median of several runs:

- ``lsutils.topology``: ``merge_tree`` (basins, merge events, pairs) + ``summarize``;
- gudhi: ``CubicalComplex(vertices=...)`` and its persistence (pairs only, no tree);

and the two sets of dimension-0 pairs are checked equal.

Usage::

    python benchmarks/topology.py            # a table
    python benchmarks/topology.py --json     # the same figures as one JSON object
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import gudhi
import numpy as np

from lsutils.topology import diagrams_equal, merge_tree, summarize


def smooth_field(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    f = 0.5 * sum(a ** 2 for a in axes)
    for _ in range(8):
        c, w, depth = rng.uniform(-0.8, 0.8, len(shape)), rng.uniform(0.05, 0.2), rng.uniform(0.2, 1.0)
        f -= depth * np.exp(-sum((a - ci) ** 2 for a, ci in zip(axes, c)) / w ** 2)
    return f + 0.01 * rng.random(shape)


def median_time(fn, repeats: int) -> tuple[object, float]:
    out, times = None, []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, float(np.median(times))


def case(values: np.ndarray, repeats: int) -> dict:
    def ours():
        tree = merge_tree(values)
        return tree, summarize(tree)

    (tree, summary), t_ours = median_time(ours, repeats)

    def theirs():
        return np.array([p for d, p in gudhi.CubicalComplex(vertices=values).persistence() if d == 0])

    pairs, t_gudhi = median_time(theirs, repeats)
    same = diagrams_equal(tree.diagram(), pairs)
    return {"shape": list(values.shape), "points": int(values.size), "minima": summary.n_minima,
            "saddles": summary.n_saddles, "lsutils_ms": 1e3 * t_ours, "gudhi_ms": 1e3 * t_gudhi,
            "speedup_vs_gudhi": t_gudhi / t_ours, "pairs_equal_gudhi": bool(same)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7, help="runs per timing, median reported (default 7)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    res = {"cases": []}
    for shape in ((101, 101), (201, 201), (41, 41, 41)):
        for kind, values in (("smooth", smooth_field(shape, 0)), ("noise", np.random.default_rng(0).random(shape))):
            res["cases"].append({"field": kind, **case(values, a.repeats)})
    res["targets"] = {"101x101_under_ms": 50, "41^3_under_ms": 2000}
    res["met"] = all(c["lsutils_ms"] < (50 if c["points"] == 101 ** 2 else 2000)
                     for c in res["cases"] if c["points"] in (101 ** 2, 41 ** 3))
    if a.json:
        print(json.dumps(res, indent=2))
        return 0
    print("grid          field    minima  saddles   lsutils ms   gudhi ms   lsutils/gudhi speed   pairs equal")
    for c in res["cases"]:
        grid = "x".join(map(str, c["shape"]))
        print(f"{grid:<13} {c['field']:<7} {c['minima']:>7} {c['saddles']:>8} {c['lsutils_ms']:>12.1f} "
              f"{c['gudhi_ms']:>10.1f} {c['speedup_vs_gudhi']:>20.2f}x   {c['pairs_equal_gudhi']}")
    print(f"targets (101x101 < 50 ms, 41^3 < 2 s): {'met' if res['met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
