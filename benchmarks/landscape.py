"""Benchmark: grid-evaluation throughput of lsutils.landscape against the alternatives.

Throughput is grid points x samples per second. For a CIFAR-style ResNet-20 (eval-mode
BatchNorm) and for the 4x50 PINN MLP, on the same model, data and grid:

(a) the plain forward pass over the same data at its best batch size: the limit
    (for the PINN, its full loss at one point, repeated);
(b) the usual loop: load each grid point's weights into the model, run a full pass (for
    the PINN the network and loss as the reference code of Krishnapriyan et al. 2021 has
    them: ``torch.nn.Tanh``, u_t and u_x by two autograd calls that keep the graph; and,
    for comparison, with one autograd call and no graph, and with lsutils' own network
    and loss);
(c) the ``loss-landscapes`` package's ``random_plane`` (filter normalization);
(d) ``lsutils.landscape.evaluate_grid`` (for the PINN with several chunk sizes, the
    loss alone as (b) and (c) compute it, and once with the relative error as well).

Every method runs with the CPU allocator settings that ``lsutils.repro.choose_device``
applies (``tune_cpu_allocator``), so none pays for page faults the others avoid.
The machine's speed drifts by ~15% over a minute, so the limit (a) and lsutils (d) are
timed in alternating rounds and every ratio to the limit is the median of the per-round
ratios; the slower alternatives (b), (c) are timed once (ResNet) or best of three (PINN).

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
from lsutils.landscape import evaluate_block, evaluate_grid, grid_axes
from lsutils.models import resnet
from lsutils.objectives import ClassifierObjective
from lsutils.repro import tune_cpu_allocator


def timed(fn, repeats: int = 1):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def alternating(fns: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each function, in ``rounds`` rounds that run them in turn
    (the order rotated each round), so slow drifts of the machine hit all alike."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - t)
    return times


def median_ratio(times: dict[str, list[float]], ours: str, limit: str, work_ours: float,
                 work_limit: float) -> float:
    """Median over rounds of (throughput of ``ours``) / (throughput of ``limit``)."""
    return float(np.median([(work_ours / a) / (work_limit / b) for a, b in zip(times[ours], times[limit])]))


def load_point(model, origin, dirs, coords) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(origin[name] + sum(c * d[name] for c, d in zip(coords, dirs)))


def resnet_case(n_samples: int, steps: int, rounds: int) -> dict:
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
    per_size = {bs: timed(lambda bs=bs: forward_pass(bs), 2)[1] for bs in sizes}
    best_bs = min(per_size, key=per_size.get)
    res = {"model": "ResNet-20 (2-D, eval-mode BN)", "samples": n_samples, "grid": f"{steps}x{steps}",
           "best_batch": best_bs}
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

    from loss_landscapes.metrics import Loss

    metric = Loss(torch.nn.CrossEntropyLoss(), x, y)
    res["loss_landscapes"] = _loss_landscapes_plane(model, metric, steps, points, n_samples)
    obj = ClassifierObjective(model, x, y, batch_size=best_bs)
    fns = {"forward": lambda: forward_pass(best_bs), "loop": loop}
    for chunk in (1, 4):  # loss and accuracy come from the same forward pass
        fns[f"lsutils_chunk{chunk}"] = lambda chunk=chunk: evaluate_grid(obj, dirs, axes, chunk_size=chunk,
                                                                          progress=False)
    times = alternating(fns, rounds)
    t_fwd = float(np.median(times["forward"]))
    res["forward"] = {"seconds_per_pass": t_fwd, "rounds": times["forward"], "throughput": n_samples / t_fwd}
    t_loop = float(np.median(times["loop"]))
    res["loop"] = {"seconds": t_loop, "rounds": times["loop"], "throughput": points * n_samples / t_loop}
    for key in fns:
        if key.startswith("lsutils"):
            t = float(np.median(times[key]))
            res[key] = {"seconds": t, "rounds": times[key], "throughput": points * n_samples / t,
                        "vs_forward_median": median_ratio(times, key, "forward", points * n_samples, n_samples),
                        "vs_loop_median": median_ratio(times, key, "loop", 1, 1)}
    res["origin_check"] = {"grid": evaluate_grid(obj, dirs, [np.zeros(1)] * 2, progress=False).at_origin(),
                           "forward": forward_pass(best_bs) / n_samples}
    return res


def _loss_landscapes_plane(model, metric, steps, points, n_samples, repeats: int = 1) -> dict:
    """Time loss-landscapes' random_plane. Its filter normalization divides by zero on these
    models (a filter norm of zero); the evaluation costs the same with its layer normalization."""
    import loss_landscapes

    for normalization in ("filter", "layer"):
        try:
            _, t = timed(lambda n=normalization: loss_landscapes.random_plane(model, metric, distance=2.0, steps=steps,
                                                                           normalization=n, deepcopy_model=True),
                         repeats)
            return {"seconds": t, "throughput": points * n_samples / t, "normalization": normalization}
        except ZeroDivisionError:
            continue
    raise RuntimeError("loss-landscapes' random_plane failed with every normalization")


class ReferenceMLP(torch.nn.Module):
    """The PINN network as the reference code runs it: ``nn.Sequential`` of ``nn.Linear``
    and ``nn.Tanh`` (the same parameter names as ``PinnMLP``)."""

    def __init__(self, net: torch.nn.Sequential) -> None:
        super().__init__()
        self.net = net

    def forward(self, xt: torch.Tensor) -> torch.Tensor:
        return self.net(xt).squeeze(-1)


def pinn_case(n_collocation: int, steps: int, rounds: int) -> dict:
    torch.manual_seed(0)
    problem = pinn.ConvectionProblem(10.0)
    points_xt = problem.sample(n_collocation, 256, 100, seed=0)
    model = pinn.PinnMLP(50, 4)
    obj = pinn.PinnObjective(model, problem, points_xt)
    n_samples = n_collocation + 256 + 2 * 100
    points = steps * steps
    res = {"model": "PINN 4x50 tanh MLP (loss with u_t + beta u_x)", "samples": n_samples,
           "grid": f"{steps}x{steps}"}
    origin = {k: v.detach().clone() for k, v in obj.params.items()}
    dirs = [random_direction(origin, 1), random_direction(origin, 2)]
    axes = grid_axes(steps, 1.0, 2)
    coords = np.stack([m.reshape(-1) for m in np.meshgrid(*axes, indexing="ij")], 1)
    loop_model = copy.deepcopy(model)
    loop_obj = pinn.PinnObjective(loop_model, problem, points_xt)
    reference = ReferenceMLP(copy.deepcopy(model.net))  # the same weights, run as nn.Sequential

    def loop():
        out = []
        for c in coords:
            load_point(loop_model, origin, dirs, c)
            with torch.no_grad():
                out.append(float(loop_obj.loss(dict(loop_model.named_parameters()))))
        return out

    def reference_loss(m) -> float:
        """The loss as the reference PINN code for this problem writes it (Krishnapriyan et
        al. 2021): x and t as separate leaves, u_t and u_x by two autograd calls that keep
        the graph, every term with gradients on (the same function serves training)."""
        x = points_xt.interior[:, :1].clone().requires_grad_(True)
        t = points_xt.interior[:, 1:].clone().requires_grad_(True)
        u = m(torch.cat([x, t], 1)).unsqueeze(-1)
        u_t = torch.autograd.grad(u, t, torch.ones_like(u), retain_graph=True, create_graph=True)[0]
        u_x = torch.autograd.grad(u, x, torch.ones_like(u), retain_graph=True, create_graph=True)[0]
        res_f = (u_t + problem.beta * u_x).pow(2).mean()
        init = (m(points_xt.initial) - points_xt.initial_values).pow(2).mean()
        bnd = (m(points_xt.boundary_left) - m(points_xt.boundary_right)).pow(2).mean()
        return (res_f + init + bnd).detach().item()

    def usual_loss(m) -> float:
        """The same loss written with care: one autograd call for the input gradient, no
        graph kept, the conditions without gradients."""
        xt = points_xt.interior.clone().requires_grad_(True)
        (du,) = torch.autograd.grad(m(xt).sum(), xt)
        res_f = (du[:, 1] + problem.beta * du[:, 0]).pow(2).mean()
        with torch.no_grad():
            init = (m(points_xt.initial) - points_xt.initial_values).pow(2).mean()
            bnd = (m(points_xt.boundary_left) - m(points_xt.boundary_right)).pow(2).mean()
        return float(res_f + init + bnd)

    def loop_with(loss_fn):
        def run():
            out = []
            for c in coords:
                load_point(reference, origin, dirs, c)
                out.append(loss_fn(reference))
            return out
        return run

    loops = {"loop": ("per-point loop, the reference PINN code's loss (two autograd calls, graph kept)",
                      loop_with(reference_loss)),
             "loop_autograd": ("per-point loop, one autograd call for the input gradient, no graph kept",
                               loop_with(usual_loss)),
             "loop_same_loss": ("per-point loop with lsutils' loss (the tangent carried by hand)", loop)}
    chunks = (1, 8, 16, 64, points)
    def one_point_loss():
        with torch.no_grad():
            return [obj.loss(obj.params).item() for _ in range(points)]

    fns = {"forward": one_point_loss}
    fns.update({k: fn for k, (_, fn) in loops.items()})
    for chunk in chunks:  # the loss alone, as the loops and loss-landscapes compute it
        fns[f"lsutils_chunk{chunk}"] = lambda chunk=chunk: evaluate_grid(
            obj, dirs, axes, chunk_size=chunk, progress=False, metrics=False)
    times = alternating(fns, rounds)
    t_fwd = float(np.median(times["forward"])) / points
    res["forward"] = {"seconds_per_pass": t_fwd, "throughput": n_samples / t_fwd,
                      "note": "the loss at one point, repeated once per grid point"}
    for key, (note, _) in loops.items():
        t = float(np.median(times[key]))
        res[key] = {"seconds": t, "throughput": points * n_samples / t, "note": note}
    for chunk in chunks:
        key = f"lsutils_chunk{chunk}"
        t = float(np.median(times[key]))
        res[key] = {"seconds": t, "throughput": points * n_samples / t,
                    "vs_forward_median": median_ratio(times, key, "forward", 1, 1),
                    **{f"vs_{k}_median": median_ratio(times, key, k, 1, 1) for k in loops}}

    from loss_landscapes.metrics import Metric

    class PinnLoss(Metric):
        def __call__(self, model_wrapper) -> float:
            module = model_wrapper.modules[0]
            with torch.no_grad():
                return float(loop_obj.loss(dict(module.named_parameters())))

    res["loss_landscapes"] = _loss_landscapes_plane(model, PinnLoss(), steps, points, n_samples, repeats=3)
    _, t = timed(lambda: evaluate_grid(obj, dirs, axes, chunk_size=16, progress=False))
    res["with_metric_chunk16"] = {"seconds": t, "throughput": points * n_samples / t,
                                  "note": "loss and relative L2 error on the 256x100 grid"}
    return res


def profile_point(n_samples: int, batch: int) -> dict:
    """Where the time of one ResNet-20 grid point goes, beside one plain forward pass over the
    same data: torch.profiler's self time per operator, and the wall time outside any operator
    (Python, ``functional_call``'s swaps, the grid's bookkeeping)."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = resnet(20, skip=True, dim=2).eval()
    x, y = torch.randn(n_samples, 3, 32, 32), torch.randint(0, 10, (n_samples,))
    obj = ClassifierObjective(model, x, y, batch_size=batch)
    origin = {k: v.detach().clone() for k, v in model.named_parameters()}
    dirs = [random_direction(origin, 1), random_direction(origin, 2)]
    coeffs = torch.tensor([[0.5, -0.5]])

    def point():  # the work of one grid point inside evaluate_grid (chunk 1: loss and accuracy)
        evaluate_block(obj, origin, dirs, coeffs, [np.array([0])], True)

    def forward():
        with torch.no_grad():
            for i in range(0, n_samples, batch):
                F.cross_entropy(model(x[i:i + batch]), y[i:i + batch], reduction="sum").item()

    out = {}
    for name, fn in (("grid_point", point), ("forward", forward)):
        fn()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t = time.perf_counter()
            fn()
            wall = time.perf_counter() - t
        ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in ops) / 1e6
        out[name] = {"wall_s": wall, "ops_s": total, "outside_ops_s": max(0.0, wall - total),
                     "top": [(e.key, e.self_cpu_time_total / 1e6, e.count) for e in ops[:8]]}
    return out


def ratios(case: dict) -> dict:
    """The best lsutils setting and its ratios: to the limit and the loops, medians of
    the alternating rounds; to loss-landscapes, of the medians."""
    best = max((k for k in case if k.startswith("lsutils_")), key=lambda k: case[k]["throughput"])
    out = {"best": best, "vs_forward": case[best]["vs_forward_median"],
           "vs_loss_landscapes": case[best]["throughput"] / case["loss_landscapes"]["throughput"]}
    for key in ("loop", "loop_autograd", "loop_same_loss"):
        if key in case:
            out[f"vs_{key}"] = case[best][f"vs_{key}_median"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resnet-samples", type=int, default=512, help="ResNet data samples (default 512)")
    p.add_argument("--resnet-steps", type=int, default=5, help="ResNet grid is steps x steps (default 5)")
    p.add_argument("--pinn-collocation", type=int, default=1000, help="PINN collocation points")
    p.add_argument("--pinn-steps", type=int, default=21, help="PINN grid is steps x steps (default 21)")
    p.add_argument("--rounds", type=int, default=5, help="alternating timing rounds (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--profile", action="store_true", help="only profile one ResNet grid point against a forward pass")
    a = p.parse_args(argv)
    tuned = tune_cpu_allocator()  # as choose_device does on the CPU: every method below benefits
    if a.profile:
        prof = profile_point(a.resnet_samples, 64)
        if a.json:
            print(json.dumps(prof, indent=2))
            return 0
        for name, r in prof.items():
            print(f"{name}: {r['wall_s']:.3f} s wall, {r['ops_s']:.3f} s in operators, "
                  f"{r['outside_ops_s']:.3f} s outside them")
            for key, sec, count in r["top"]:
                print(f"  {key:<32} {sec:8.3f} s  {100 * sec / r['wall_s']:5.1f}%  x{count}")
        return 0
    res = {"threads": torch.get_num_threads(), "torch": torch.__version__, "rounds": a.rounds, "allocator_tuned": tuned,
           "resnet": resnet_case(a.resnet_samples, a.resnet_steps, a.rounds),
           "pinn": pinn_case(a.pinn_collocation, a.pinn_steps, a.rounds)}
    for case in ("resnet", "pinn"):
        res[case]["ratios"] = ratios(res[case])
    if a.json:
        print(json.dumps(res, indent=2))
        return 0
    labels = {"loop": "per-point loop", "loop_autograd": "  same, autograd written with care",
              "loop_same_loss": "  same, lsutils' loss"}
    for case in ("resnet", "pinn"):
        c = res[case]
        print(f"{c['model']}: {c['samples']} samples, grid {c['grid']}, {res['threads']} threads")
        print("  method                                points x samples / s    vs forward")
        rows = [("forward pass (the limit)", c["forward"])]
        rows += [(labels[k], c[k]) for k in labels if k in c]
        rows.append((f"loss-landscapes ({c['loss_landscapes']['normalization']} norm.)", c["loss_landscapes"]))
        rows += [(f"lsutils evaluate_grid, {k.split('_')[1]}", c[k]) for k in c if k.startswith("lsutils_")]
        for name, r in rows:
            print(f"  {name:<38} {r['throughput']:>18,.0f}    {r['throughput'] / c['forward']['throughput']:.2f}x")
        if "with_metric_chunk16" in c:
            seconds = c["with_metric_chunk16"]["seconds"]
            print(f"  (lsutils with the relative L2 error as well, chunk 16: {seconds:.2f} s)")
        q = c["ratios"]
        loops = ", ".join(f"{q['vs_' + k]:.2f}x the {labels[k].strip()}" for k in labels if "vs_" + k in q)
        print(f"  best lsutils ({q['best']}), medians over {res['rounds']} rounds: "
              f"{q['vs_forward']:.2f}x the forward pass, {loops}; {q['vs_loss_landscapes']:.2f}x loss-landscapes\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
