"""Benchmark: grid-evaluation throughput of lsutils.landscape against the alternatives.

Throughput is grid points x samples per second. For a CIFAR-style ResNet-20 (eval-mode
BatchNorm) and for the 4x50 PINN MLP, on the same model, data and grid:

(a) the plain forward pass over the same data at its best batch size: the limit
    (for the PINN, its full loss at one point, repeated);
(b) the usual loop: load each grid point's weights into the model, run a full pass (for
    the PINN with its loss as PINN code usually writes it, input gradients by autograd;
    and, for comparison, with lsutils' forward-mode loss);
(c) the ``loss-landscapes`` package's ``random_plane`` (filter normalization);
(d) ``lsutils.landscape.evaluate_grid`` (for the PINN with several chunk sizes, the
    loss alone as (b) and (c) compute it, and once with the relative error as well).

PINN timings are the best of three runs; the machine's speed drifts by ~15%.

Usage::

    python benchmarks/landscape.py            # a table of throughputs and ratios
    python benchmarks/landscape.py --json     # the same figures as one JSON object
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from lsutils import pinn
from lsutils.directions import random_direction
from lsutils.landscape import evaluate_grid, grid_axes
from lsutils.models import resnet
from lsutils.objectives import ClassifierObjective


def timed(fn, repeats: int = 1):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def load_point(model, origin, dirs, coords) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(origin[name] + sum(c * d[name] for c, d in zip(coords, dirs)))


def resnet_case(n_samples: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = resnet(20, skip=True, dim=2).eval()
    x, y = torch.randn(n_samples, 3, 32, 32), torch.randint(0, 10, (n_samples,))
    points = steps * steps

    def forward_pass(bs):
        with torch.no_grad():
            return sum(float(F.cross_entropy(model(x[i:i + bs]), y[i:i + bs], reduction="sum"))
                       for i in range(0, n_samples, bs))

    sizes = [b for b in (32, 64, 128, 256, 512) if b <= n_samples]
    forward_pass(sizes[-1])  # warm up
    per_size = {bs: timed(lambda: forward_pass(bs), 2)[1] for bs in sizes}
    best_bs = min(per_size, key=per_size.get)
    t_fwd = per_size[best_bs]
    res = {"model": "ResNet-20 (2-D, eval-mode BN)", "samples": n_samples, "grid": f"{steps}x{steps}",
           "best_batch": best_bs, "forward": {"seconds_per_pass": t_fwd,
                                             "throughput": n_samples / t_fwd}}
    origin = {k: v.detach().clone() for k, v in model.named_parameters()}
    dirs = [random_direction(origin, 1), random_direction(origin, 2)]
    axes = grid_axes(steps, 1.0, 2)
    coords = np.stack([m.reshape(-1) for m in np.meshgrid(*axes, indexing="ij")], 1)
    loop_model = copy.deepcopy(model)

    def loop():
        out = []
        for c in coords:
            load_point(loop_model, origin, dirs, c)
            with torch.no_grad():
                out.append(sum(float(F.cross_entropy(loop_model(x[i:i + best_bs]), y[i:i + best_bs],
                                                     reduction="sum")) for i in range(0, n_samples, best_bs)))
        return out

    _, t_loop = timed(loop)
    res["loop"] = {"seconds": t_loop, "throughput": points * n_samples / t_loop}
    from loss_landscapes.metrics import Loss

    metric = Loss(torch.nn.CrossEntropyLoss(), x, y)
    res["loss_landscapes"] = _loss_landscapes_plane(model, metric, steps, points, n_samples)
    obj = ClassifierObjective(model, x, y, batch_size=best_bs)
    for chunk in (1, 4):  # loss and accuracy come from the same forward pass
        land, t = timed(lambda: evaluate_grid(obj, dirs, axes, chunk_size=chunk, progress=False))
        res[f"lsutils_chunk{chunk}"] = {"seconds": t, "throughput": points * n_samples / t,
                                        "origin_loss": land.at_origin()}
    return res


def _loss_landscapes_plane(model, metric, steps, points, n_samples, repeats: int = 1) -> dict:
    """Time loss-landscapes' random_plane. Its filter normalization divides by zero on these
    models (a filter norm of zero); the evaluation costs the same with its layer normalization."""
    import loss_landscapes

    for normalization in ("filter", "layer"):
        try:
            _, t = timed(lambda: loss_landscapes.random_plane(model, metric, distance=2.0, steps=steps,
                                                              normalization=normalization, deepcopy_model=True),
                         repeats)
            return {"seconds": t, "throughput": points * n_samples / t, "normalization": normalization}
        except ZeroDivisionError:
            continue
    raise RuntimeError("loss-landscapes' random_plane failed with every normalization")


def pinn_case(n_collocation: int, steps: int) -> dict:
    torch.manual_seed(0)
    problem = pinn.ConvectionProblem(10.0)
    points_xt = problem.sample(n_collocation, 256, 100, seed=0)
    model = pinn.PinnMLP(50, 4)
    obj = pinn.PinnObjective(model, problem, points_xt)
    n_samples = n_collocation + 256 + 2 * 100
    points = steps * steps
    _, t_one = timed(lambda: [obj.loss(obj.params) for _ in range(20)], 2)
    t_fwd = t_one / 20
    res = {"model": "PINN 4x50 tanh MLP (loss with u_t + beta u_x)", "samples": n_samples,
           "grid": f"{steps}x{steps}", "forward": {"seconds_per_pass": t_fwd, "throughput": n_samples / t_fwd}}
    origin = {k: v.detach().clone() for k, v in obj.params.items()}
    dirs = [random_direction(origin, 1), random_direction(origin, 2)]
    axes = grid_axes(steps, 1.0, 2)
    coords = np.stack([m.reshape(-1) for m in np.meshgrid(*axes, indexing="ij")], 1)
    loop_model = copy.deepcopy(model)
    loop_obj = pinn.PinnObjective(loop_model, problem, points_xt)

    def loop():
        out = []
        for c in coords:
            load_point(loop_model, origin, dirs, c)
            with torch.no_grad():
                out.append(float(loop_obj.loss(dict(loop_model.named_parameters()))))
        return out

    _, t_same = timed(loop, 3)
    res["loop_same_loss"] = {"seconds": t_same, "throughput": points * n_samples / t_same,
                             "note": "per-point loop with lsutils' loss (forward-mode residual)"}

    def usual_loss(m) -> float:
        """The PINN loss as PINN code usually writes it: input gradients by autograd."""
        xt = points_xt.interior.clone().requires_grad_(True)
        (du,) = torch.autograd.grad(m(xt).sum(), xt)
        res_f = (du[:, 1] + problem.beta * du[:, 0]).pow(2).mean()
        with torch.no_grad():
            init = (m(points_xt.initial) - points_xt.initial_values).pow(2).mean()
            bnd = (m(points_xt.boundary_left) - m(points_xt.boundary_right)).pow(2).mean()
        return float(res_f + init + bnd)

    def usual_loop():
        out = []
        for c in coords:
            load_point(loop_model, origin, dirs, c)
            out.append(usual_loss(loop_model))
        return out

    _, t_loop = timed(usual_loop, 3)
    res["loop"] = {"seconds": t_loop, "throughput": points * n_samples / t_loop,
                   "note": "per-point loop with the usual autograd PINN loss"}

    from loss_landscapes.metrics import Metric

    class PinnLoss(Metric):
        def __call__(self, model_wrapper) -> float:
            module = model_wrapper.modules[0]
            with torch.no_grad():
                return float(loop_obj.loss(dict(module.named_parameters())))

    res["loss_landscapes"] = _loss_landscapes_plane(model, PinnLoss(), steps, points, n_samples, repeats=3)
    for chunk in (1, 8, 16, 32, 64, points):  # the loss alone, as the loop and loss-landscapes compute
        _, t = timed(lambda: evaluate_grid(obj, dirs, axes, chunk_size=chunk, progress=False, metrics=False), 3)
        res[f"lsutils_chunk{chunk}"] = {"seconds": t, "throughput": points * n_samples / t}
    _, t = timed(lambda: evaluate_grid(obj, dirs, axes, chunk_size=64, progress=False))
    res["with_metric_chunk64"] = {"seconds": t, "throughput": points * n_samples / t,
                                  "note": "loss and relative L2 error on the 256x100 grid"}
    return res


def ratios(case: dict) -> dict:
    best = max((k for k in case if k.startswith("lsutils")), key=lambda k: case[k]["throughput"])
    ours = case[best]["throughput"]
    out = {"best": best, "vs_forward": ours / case["forward"]["throughput"],
           "vs_loop": ours / case["loop"]["throughput"],
           "vs_loss_landscapes": ours / case["loss_landscapes"]["throughput"]}
    if "loop_same_loss" in case:
        out["vs_loop_same_loss"] = ours / case["loop_same_loss"]["throughput"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resnet-samples", type=int, default=512, help="ResNet data samples (default 512)")
    p.add_argument("--resnet-steps", type=int, default=5, help="ResNet grid is steps x steps (default 5)")
    p.add_argument("--pinn-collocation", type=int, default=1000, help="PINN collocation points")
    p.add_argument("--pinn-steps", type=int, default=21, help="PINN grid is steps x steps (default 21)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    res = {"threads": torch.get_num_threads(), "torch": torch.__version__,
           "resnet": resnet_case(a.resnet_samples, a.resnet_steps),
           "pinn": pinn_case(a.pinn_collocation, a.pinn_steps)}
    for case in ("resnet", "pinn"):
        res[case]["ratios"] = ratios(res[case])
    if a.json:
        print(json.dumps(res, indent=2))
        return 0
    for case in ("resnet", "pinn"):
        c = res[case]
        print(f"{c['model']}: {c['samples']} samples, grid {c['grid']}, {res['threads']} threads")
        print("  method                              points x samples / s    vs forward")
        ll = f"loss-landscapes ({c['loss_landscapes']['normalization']} norm.)"
        rows = [("forward pass (the limit)", c["forward"]), ("per-point loop", c["loop"])]
        if "loop_same_loss" in c:
            rows.append(("per-point loop, lsutils' loss", c["loop_same_loss"]))
        rows.append((ll, c["loss_landscapes"]))
        rows += [(f"lsutils evaluate_grid, {k.split('_')[1]}", c[k]) for k in c if k.startswith("lsutils")]
        for name, r in rows:
            print(f"  {name:<36} {r['throughput']:>18,.0f}    {r['throughput'] / c['forward']['throughput']:.2f}x")
        if "with_metric_chunk64" in c:
            print(f"  (lsutils with the relative L2 error as well, chunk 64: {c['with_metric_chunk64']['seconds']:.1f} s)")
        q = c["ratios"]
        extra = (f", {q['vs_loop_same_loss']:.2f}x the loop with lsutils' loss" if "vs_loop_same_loss" in q else "")
        print(f"  best lsutils ({q['best']}): {q['vs_forward']:.2f}x the forward pass, {q['vs_loop']:.2f}x the "
              f"usual loop{extra}, {q['vs_loss_landscapes']:.2f}x loss-landscapes\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
