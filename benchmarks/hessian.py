"""Benchmark: lsutils.hessian against PyHessian on the same model and data.

On a CIFAR-style ResNet-20 (eval-mode BatchNorm) and one batch of inputs:

1. one Hessian-vector product, double backward reusing the gradient graph (PyHessian's
   way) against forward-over-reverse (``jvp`` of ``grad``);
2. the top-5 eigenvalues: our Lanczos against PyHessian's power iteration with
   deflation, both at ``--tol``; values, products and seconds;
3. the trace with the same number of Rademacher probes: mean, standard error, seconds;
   and Hutch++ (our deflated estimator): the products it needs for PyHessian's error;
4. the spectral density: PyHessian's ``.density()`` calls the removed ``torch.eig``,
   so SLQ is checked against our dense Hessian of a small 1-D CNN instead (extreme
   eigenvalues and the first two spectral moments).

Usage::

    python benchmarks/hessian.py            # a table
    python benchmarks/hessian.py --json     # the same figures as one JSON object
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import numpy as np
import torch
from torch import nn

from lsutils.hessian import (HessianOperator, dense_hessian, hutchinson_trace, hutchpp_trace, slq_density,
                             top_eigenpairs)
from lsutils.models import resnet
from lsutils.objectives import ClassifierObjective


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def resnet_batch(batch: int, depth: int, seed: int = 0):
    torch.manual_seed(seed)
    model = resnet(depth, skip=True, dim=2).eval()
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    return model, x, y


def bench_hvp(model, x, y, repeats: int) -> dict:
    out = {}
    v = None
    for method in ("double_backward", "forward_over_reverse"):
        op = HessianOperator(ClassifierObjective(model, x, y, batch_size=None), method=method)
        v = torch.randn(op.dim, generator=torch.Generator().manual_seed(0)) if v is None else v
        first, t_first = timed(lambda op=op, v=v: op.matvec(v))  # includes the gradient graph for double backward
        times = [timed(lambda op=op, v=v: op.matvec(v))[1] for _ in range(repeats)]
        out[method] = {"first_s": t_first, "per_product_s": float(np.median(times)), "hv": first}
    diff = (out["double_backward"]["hv"] - out["forward_over_reverse"]["hv"]).norm()
    rel = float(diff / out["double_backward"]["hv"].norm())
    for m in out.values():
        m.pop("hv")
    out["relative_difference"] = rel
    out["faster"] = min(("double_backward", "forward_over_reverse"), key=lambda k: out[k]["per_product_s"])
    return out


class CountingPyHessian:
    """PyHessian's `hessian` with its Hessian-vector products counted."""

    def __init__(self, model, x, y, warmup: int = 2):
        import pyhessian  # noqa: F401  (the package re-exports the class over its module's name)

        ph = sys.modules["pyhessian.hessian"]
        self.count = 0
        original = ph.hessian_vector_product

        def counted(*a, **k):
            self.count += 1
            return original(*a, **k)

        ph.hessian_vector_product = counted
        # its own copy: PyHessian leaves gradient graphs in the model's .grad fields
        self.h = ph.hessian(copy.deepcopy(model), nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        v = [torch.randn_like(p) for p in self.h.params]
        for _ in range(warmup):  # first products in a process are slow: time neither side cold
            original(self.h.gradsH, self.h.params, v)


def our_operator(model, x, y, warmup: int = 2) -> HessianOperator:
    """Our operator on the same model and batch, its gradient graph built and warmed up
    outside the timing (as PyHessian's constructor builds its own)."""
    op = HessianOperator(ClassifierObjective(model, x, y, batch_size=None))
    for _ in range(warmup):
        op.matvec(torch.randn(op.dim))
    op.num_products = 0
    return op


def bench_eigen(model, x, y, k: int, tol: float) -> dict:
    torch.manual_seed(0)
    ref = CountingPyHessian(model, x, y)
    (vals, _), t_ph = timed(lambda: ref.h.eigenvalues(maxIter=100, tol=tol, top_n=k))
    op = our_operator(model, x, y)
    # power iteration with deflation converges to the largest |lambda| left: compare like with like
    eig, t_ours = timed(lambda: top_eigenpairs(op, k=k, tol=tol, max_steps=300, which="magnitude"))
    top = top_eigenpairs(our_operator(model, x, y), k=k, tol=tol, max_steps=300)
    ours = np.array(eig.values)
    theirs = np.array(vals)
    order = np.argsort(-np.abs(theirs))
    theirs = theirs[order]
    return {"k": k, "tol": tol, "which": "largest magnitude",
            "pyhessian": {"values": theirs.tolist(), "products": ref.count, "seconds": t_ph},
            "lsutils": {"values": ours.tolist(), "products": eig.num_products, "seconds": t_ours,
                        "converged": eig.converged},
            "max_relative_difference": float(np.max(np.abs(ours - theirs) / np.abs(theirs))),
            "speedup": t_ph / t_ours,
            "lsutils_largest": {"values": top.values, "products": top.num_products}}


def bench_trace(model, x, y, probes: int, blocks: int = 5) -> dict:
    """Both estimators with the same probes, run in alternating blocks so that drift in
    the machine's speed falls on both alike."""
    torch.manual_seed(0)
    ref = CountingPyHessian(model, x, y)
    op = our_operator(model, x, y)
    per = max(2, probes // blocks)
    theirs, ours, t_ph, t_ours = [], [], 0.0, 0.0
    for b in range(blocks):
        out, t = timed(lambda: ref.h.trace(maxIter=per, tol=0.0))
        theirs += list(out)
        t_ph += t
        tr, t = timed(lambda b=b: hutchinson_trace(op, n_probes=per, seed=b))
        ours += tr.samples
        t_ours += t
    theirs, ours = np.asarray(theirs, dtype=float), np.asarray(ours)
    pp, t_pp = timed(lambda: hutchpp_trace(our_operator(model, x, y), n_products=len(ours), seed=0))
    se = lambda a: float(a.std(ddof=1) / np.sqrt(len(a)))  # noqa: E731
    needed = int(np.ceil(len(ours) * min(1.0, (pp.stderr / se(theirs)) ** 2)))
    return {"probes": len(ours), "blocks": blocks,
            "pyhessian": {"mean": float(theirs.mean()), "stderr": se(theirs), "products": ref.count,
                          "seconds": t_ph},
            "lsutils": {"mean": float(ours.mean()), "stderr": se(ours), "products": len(ours),
                        "seconds": t_ours},
            "lsutils_hutchpp": {"mean": pp.mean, "stderr": pp.stderr, "products": pp.n_probes,
                                "seconds": t_pp, "products_for_pyhessian_stderr": needed,
                                "seconds_for_pyhessian_stderr": t_pp * needed / len(ours)},
            "difference_in_stderr": abs(float(ours.mean() - theirs.mean())) / np.hypot(se(ours), se(theirs)),
            "speedup": t_ph / t_ours,
            "speedup_same_stderr": t_ph / min(t_ours, t_pp * needed / len(ours))}


def bench_esd(runs: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 8, 5, padding=2), nn.Tanh(), nn.AdaptiveAvgPool1d(8), nn.Flatten(),
                          nn.Linear(64, 10)).double()
    x, y = torch.randn(256, 1, 40, dtype=torch.float64), torch.randint(0, 10, (256,))
    obj = ClassifierObjective(model, x, y)
    H, t_dense = timed(lambda: dense_hessian(obj))
    lam, t_eigh = timed(lambda: torch.linalg.eigvalsh(H).numpy())
    op = HessianOperator(obj)
    esd, t_slq = timed(lambda: slq_density(op, n_runs=runs, n_steps=steps, seed=0))
    n = len(lam)
    return {"params": n, "runs": runs, "steps": steps, "products": esd.num_products,
            "dense_seconds": t_dense + t_eigh, "slq_seconds": t_slq,
            "max_eig": {"dense": float(lam[-1]), "slq": float(esd.nodes.max())},
            "min_eig": {"dense": float(lam[0]), "slq": float(esd.nodes.min())},
            "moment1": {"dense": float(lam.mean()), "slq": esd.moment(1)},
            "moment2": {"dense": float((lam ** 2).mean()), "slq": esd.moment(2)},
            "weights_sum": esd.weights.sum(1).tolist()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128, help="inputs in the batch (default 128)")
    p.add_argument("--depth", type=int, default=20, help="ResNet depth (default 20)")
    p.add_argument("--k", type=int, default=5, help="top eigenvalues (default 5)")
    p.add_argument("--tol", type=float, default=1e-3, help="eigenvalue tolerance (default 1e-3)")
    p.add_argument("--probes", type=int, default=50, help="trace probes (default 50)")
    p.add_argument("--repeats", type=int, default=3, help="timed products per HVP method")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    torch.set_num_threads(torch.get_num_threads())
    model, x, y = resnet_batch(a.batch, a.depth)
    res = {"model": f"ResNet-{a.depth} (2-D, eval-mode BN)", "batch": a.batch,
           "params": sum(q.numel() for q in model.parameters()), "threads": torch.get_num_threads(),
           "torch": torch.__version__,
           "hvp": bench_hvp(model, x, y, a.repeats), "top_eigenvalues": bench_eigen(model, x, y, a.k, a.tol),
           "trace": bench_trace(model, x, y, a.probes), "esd": bench_esd(3, 60)}
    if a.json:
        print(json.dumps(res, indent=2))
        return 0
    h, e, t, d = res["hvp"], res["top_eigenvalues"], res["trace"], res["esd"]
    print(f"{res['model']}, {res['params']:,} parameters, batch {a.batch}, {res['threads']} threads\n")
    print("Hessian-vector product           s/product")
    for m in ("double_backward", "forward_over_reverse"):
        print(f"  {m:<30} {h[m]['per_product_s']:.3f}")
    print(f"  faster: {h['faster']}; relative difference of the two products {h['relative_difference']:.1e}\n")
    print(f"Top-{e['k']} eigenvalues (tol {e['tol']})   products   seconds   values")
    for name in ("pyhessian", "lsutils"):
        r = e[name]
        print(f"  {name:<30} {r['products']:>8} {r['seconds']:>9.1f}   "
              + ", ".join(f"{v:.4g}" for v in r["values"]))
    print(f"  speedup {e['speedup']:.2f}x; largest relative difference {e['max_relative_difference']:.1e}")
    print("  (both: largest |eigenvalue|; lsutils' algebraically largest: "
          + ", ".join(f"{v:.4g}" for v in e["lsutils_largest"]["values"])
          + f", {e['lsutils_largest']['products']} products)\n")
    print(f"Trace ({t['probes']} Rademacher probes, {t['blocks']} alternating blocks)")
    print("                                   mean      stderr    seconds")
    for name in ("pyhessian", "lsutils"):
        r = t[name]
        print(f"  {name:<30} {r['mean']:>9.4g} {r['stderr']:>9.3g} {r['seconds']:>8.1f}")
    r = t["lsutils_hutchpp"]
    print(f"  {'lsutils Hutch++':<30} {r['mean']:>9.4g} {r['stderr']:>9.3g} {r['seconds']:>8.1f}")
    print(f"  Hutchinson speedup {t['speedup']:.2f}x (same products); plain means differ by "
          f"{t['difference_in_stderr']:.2f} combined stderr")
    print(f"  Hutch++ reaches PyHessian's stderr in ~{r['products_for_pyhessian_stderr']} products "
          f"({r['seconds_for_pyhessian_stderr']:.1f} s): {t['speedup_same_stderr']:.1f}x faster\n")
    print(f"SLQ vs dense Hessian ({d['params']} parameters, {d['runs']} runs x {d['steps']} steps)")
    for key in ("max_eig", "min_eig", "moment1", "moment2"):
        print(f"  {key:<10} dense {d[key]['dense']:>11.5g}   slq {d[key]['slq']:>11.5g}")
    print(f"  dense {d['dense_seconds']:.2f} s, SLQ {d['slq_seconds']:.2f} s ({d['products']} products)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
