"""Benchmark: the cost of chapter 9's products against the plain forward pass (the limit).

On the 1-D ResNet-20 of the ``quick`` profile (MNIST-1D shapes, random weights) and ``--samples``
inputs, in eval and in training mode (BatchNorm with batch statistics):

1. the forward pass of the mean loss (the floor every curvature product sits on);
2. one gradient (forward and backward);
3. one Hessian-vector product (double backward reusing the gradient graph);
4. one G-term product (one ``jvp`` and one ``vjp`` per data batch);
5. the per-class mean gradients (one forward, C pullbacks);
6. one step of training in a random subspace (``d`` columns, dense P) against a plain step.

Each as seconds and as a multiple of the forward pass.

Usage::

    python benchmarks/geometry.py                 # a table
    python benchmarks/geometry.py --json          # the same figures as one JSON object
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from lsutils.directions import flatten, unflatten
from lsutils.gauss_newton import GaussNewtonOperator
from lsutils.geometry import batch_statistics, class_gradients
from lsutils.hessian import HessianOperator
from lsutils.models import resnet
from lsutils.objectives import ClassifierObjective
from lsutils.subspace import RandomSubspace


def best_of(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def products(obj: ClassifierObjective, repeat: int) -> dict[str, dict[str, float]]:
    """Seconds of each product on ``obj`` and their multiple of the forward pass."""
    v = torch.randn(obj.num_params)
    hop, gop = HessianOperator(obj), GaussNewtonOperator(obj)
    row = {"forward": best_of(lambda: obj.loss(obj.params), repeat),
           "gradient": best_of(lambda: torch.func.grad(obj.loss)(obj.params), repeat),
           "hessian_product": best_of(lambda: hop.matvec(v), repeat),
           "gauss_newton_product": best_of(lambda: gop.matvec(v), repeat),
           "class_gradients": best_of(lambda: class_gradients(obj, 10), repeat)}
    return {k: {"seconds": t, "x_forward": t / row["forward"]} for k, t in row.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=192)
    ap.add_argument("--batch", type=int, default=128, help="BatchNorm batches of the training-mode loss")
    ap.add_argument("--dim", type=int, default=1024, help="random subspace dimension")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = resnet(20, 1, True, dim=1, in_channels=1, num_classes=10)
    x, y = torch.randn(args.samples, 1, 40), torch.randint(0, 10, (args.samples,))
    out = {"samples": args.samples, "threads": args.threads}
    for mode in ("eval", "train"):
        obj = ClassifierObjective(net, x, y)
        out[mode] = products(batch_statistics(obj, args.batch) if mode == "train" else obj, args.repeat)
    obj = batch_statistics(ClassifierObjective(net, x, y), args.batch)
    names = list(obj.params)
    theta0 = flatten(obj.params, names)
    basis = RandomSubspace(theta0.numel(), args.dim, seed=0, dtype=theta0.dtype).dense()
    z = torch.zeros(args.dim, requires_grad=True)
    th = theta0.clone().requires_grad_(True)

    def sub_step():
        obj.loss(unflatten(theta0 + basis @ z, obj.params)).backward()

    def full_step():
        obj.loss(unflatten(th, obj.params)).backward()

    out["subspace_step"] = {"dim": args.dim, "seconds": best_of(sub_step, args.repeat),
                            "plain_step_seconds": best_of(full_step, args.repeat)}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"ResNet-20 (1-D), {args.samples} samples, {args.threads} threads")
    for mode in ("eval", "train"):
        for k, r in out[mode].items():
            print(f"  {mode:5s} {k:22s} {r['seconds'] * 1e3:8.1f} ms  {r['x_forward']:5.1f}x forward")
    s = out["subspace_step"]
    print(f"  subspace step (d = {s['dim']}) {s['seconds'] * 1e3:.1f} ms vs plain step "
          f"{s['plain_step_seconds'] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
