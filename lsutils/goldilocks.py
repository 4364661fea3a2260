r"""Training in random affine subspaces, and the Goldilocks zone of the initialization's scale.

Li et al. 2018 train only :math:`z \in \mathbb{R}^d` in :math:`\theta = \theta_0 + P z`
(:class:`~lsutils.subspace.RandomSubspace`: :math:`P` a seeded random :math:`D \times d` matrix of
orthonormal columns) and call the smallest :math:`d` that reaches 90% of the full model's accuracy
the *intrinsic dimension*. Fort & Ganguli 2019 (following Fort & Scherlis 2019) find that it
depends on where :math:`\theta_0` lies: at the initialization scaled by a radius :math:`r`,
training succeeds in small :math:`d` only inside a *Goldilocks zone* of :math:`r` where the
landscape has an excess of positive curvature, measured on the projected Hessian
:math:`H_P = P^\top H(\theta_0) P` (:func:`~lsutils.gauss_newton.projected`) by

.. math:: \kappa = \frac{\operatorname{tr} H_P}{\lVert H_P\rVert_F}, \qquad
   \text{and the fraction of positive eigenvalues of } H_P,

:func:`excess_curvature`: :math:`\kappa = \sqrt d` when all curvature is positive and equal,
about 0 when positive and negative curvature balance.

A sweep runs one cell per (skip or not, radius, dimension): :class:`GoldilocksTask` builds the
chapter's small ResNet at its seeded initialization scaled by :math:`r` (every parameter, BatchNorm
scales included), measures :math:`H_P` at :math:`\theta_0` on the training-mode loss (BatchNorm
with batch statistics, as SGD sees it), trains :math:`z` with Adam on minibatches and reports the
test accuracy. Dimension 0 means the full space (all :math:`D` weights trained, no :math:`P`).
:func:`threshold_dimension` reads the intrinsic dimension off the table per radius.

Example:
    >>> import torch
    >>> excess_curvature(torch.diag(torch.tensor([2.0, 2.0, 2.0, 2.0], dtype=torch.float64)))
    {'kappa': 2.0, 'positive_fraction': 1.0, 'top': 2.0}
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor
from torch.func import functional_call, replace_all_batch_norm_modules_

from .data import Dataset
from .directions import flatten, unflatten
from .gauss_newton import projected
from .hessian import HessianOperator
from .models import ResNetSpec
from .objectives import ClassifierObjective
from .settings import check, setting
from .subspace import RandomSubspace, minimize, train_in_subspace
from .sweep import Cell

__all__ = ["GoldilocksRecipe", "GoldilocksTask", "goldilocks_cells", "excess_curvature", "threshold_dimension",
           "threshold_table",
           "scaled_init"]


@dataclass(frozen=True)
class GoldilocksRecipe:
    """The network, the subspace training and the curvature measurement shared by every cell."""

    depth: int = setting(8, lo=8, doc="ResNet depth, 6n + 2")
    width: int = setting(4, lo=1, doc="base channels k (stages k, 2k, 4k)")
    steps: int = setting(300, lo=1, doc="Adam steps on z, one minibatch each")
    batch_size: int = setting(128, lo=2, doc="minibatch size (and BatchNorm's batches)")
    lr: float = setting(0.01, lo=0.0, lo_open=True, doc="Adam learning rate")
    hessian_samples: int = setting(256, lo=2, doc="training samples of the projected Hessian's loss")
    curvature_dims: int = setting(64, lo=2, doc="columns of P the projected Hessian uses (at most d)")

    def __post_init__(self) -> None:
        check(self)
        if (self.depth - 2) % 6:
            raise ValueError(f"depth = {self.depth}; allowed: 6n + 2 (8, 14, 20, ...)")

    def spec(self, skip: bool, data: Dataset) -> ResNetSpec:
        return ResNetSpec(self.depth, 1, skip, dim=data.dim, in_channels=data.in_channels,
                          num_classes=data.num_classes, base_channels=self.width)


def excess_curvature(h: Tensor) -> dict[str, float]:
    r""":math:`\kappa = \operatorname{tr} H_P / \lVert H_P \rVert_F`, the fraction of positive
    eigenvalues and the top eigenvalue of a symmetric ``d x d`` matrix."""
    vals = torch.linalg.eigvalsh(h.double())
    frob = float(torch.linalg.matrix_norm(h.double()))
    return {"kappa": float(vals.sum()) / frob if frob > 0 else float("nan"),
            "positive_fraction": float((vals > 0).double().mean()), "top": float(vals[-1])}


def scaled_init(spec: ResNetSpec, radius: float, seed: int) -> torch.nn.Module:
    """The network's seeded initialization with every parameter multiplied by ``radius``, BatchNorm
    switched to batch statistics (no running statistics)."""
    if not radius > 0:
        raise ValueError(f"radius = {radius}; allowed: a number > 0")
    torch.manual_seed(seed)
    net = spec.build()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(radius)
    replace_all_batch_norm_modules_(net)
    return net


def goldilocks_cells(radii: Sequence[float], dims: Sequence[int], recipe: GoldilocksRecipe, data: Dataset,
                     seed: int) -> list[Cell]:
    """One cell per (with and without skips, radius, dimension); dimension 0 is the full space."""
    base = {"recipe": dataclasses.asdict(recipe), "data": data.digest, "seed": int(seed)}
    return [Cell("training_geometry", f"goldilocks_{'skip' if skip else 'noskip'}_r{r:g}_d{d}",
                 {**base, "skip": skip, "radius": float(r), "dim": int(d)})
            for skip in (True, False) for r in radii for d in sorted({0, *dims})]


@dataclass(frozen=True)
class GoldilocksTask:
    """Sweep task: train one (skip, radius, dimension) cell in its random subspace and measure the
    projected Hessian at its start."""

    data: Dataset
    recipe: GoldilocksRecipe

    def __call__(self, cell: Cell, device: torch.device) -> dict[str, Any]:
        r, p = self.recipe, cell.params
        net = scaled_init(r.spec(p["skip"], self.data), p["radius"], cell.seed).to(device)
        params = {k: v.detach() for k, v in net.named_parameters()}
        theta0 = flatten(params, list(params))
        x, y = self.data.x_train.to(device), self.data.y_train.to(device)
        gen = torch.Generator().manual_seed(cell.seed)

        def loss(theta: Tensor) -> Tensor:
            idx = torch.randint(len(x), (r.batch_size,), generator=gen).to(device)
            out = functional_call(net, unflatten(theta, params), (x[idx],))
            return torch.nn.functional.cross_entropy(out, y[idx])

        out: dict[str, Any] = {"num_params": theta0.numel(), "init_norm": float(theta0.norm())}
        n = r.hessian_samples
        obj = ClassifierObjective(net, x[:n], y[:n], device=device, batch_size=r.batch_size)
        if p["dim"]:
            sub = RandomSubspace(theta0.numel(), p["dim"], seed=cell.seed, dtype=theta0.dtype)
            basis = sub.dense()
            m = min(p["dim"], r.curvature_dims)  # the first m columns: a random m-dimensional subspace too
            out.update(excess_curvature(projected(HessianOperator(obj, params), basis[:, :m])), curvature_dims=m)
            theta, history = train_in_subspace(loss, theta0, sub, steps=r.steps, lr=r.lr, optimizer="adam",
                                               basis=basis)
        else:  # the full space: every weight trained, P = I
            out.update({"kappa": float("nan"), "positive_fraction": float("nan"), "top": float("nan"),
                        "curvature_dims": 0})
            theta, history = minimize(loss, theta0, steps=r.steps, lr=r.lr, optimizer="adam")
        test = ClassifierObjective(net, self.data.x_test, self.data.y_test, device=device, batch_size=500)
        metrics = test.metrics(unflatten(theta, params))
        tail = history[-max(1, len(history) // 10):]
        return {**out, "test_acc": 100 * metrics["accuracy"], "test_loss": metrics["loss"],
                "train_loss": sum(tail) / len(tail)}


def threshold_dimension(rows: Sequence[Mapping[str, Any]], reference: float, fraction: float = 0.9) -> float:
    """The smallest dimension among ``rows`` (one radius, one network) whose test accuracy reaches
    ``fraction`` of ``reference`` (the full model's); NaN when none does."""
    ok = [row["dim"] for row in rows if row["dim"] and row["test_acc"] >= fraction * reference]
    return float(min(ok)) if ok else math.nan


def threshold_table(rows: Sequence[Mapping[str, Any]], fraction: float = 0.9) -> list[dict[str, Any]]:
    """Per network and radius: the full space's accuracy at that radius, the reference (the full
    space at the standard initialization, r = 1, else the best full-space run), the threshold
    dimension at ``fraction`` of the reference, and the excess curvature at the smallest dimension."""
    out = []
    for skip in (True, False):
        mine = [r for r in rows if r["skip"] == skip]
        full = {r["radius"]: r["test_acc"] for r in mine if not r["dim"]}
        if not full:
            continue
        reference = full.get(1.0, max(full.values()))
        for rad in sorted({r["radius"] for r in mine}):
            sub = sorted((r for r in mine if r["radius"] == rad and r["dim"]), key=lambda r: r["dim"])
            out.append({"network": "skip" if skip else "no skip", "radius": rad, "full_acc": full.get(rad, math.nan),
                        "reference": reference, "threshold": threshold_dimension(sub, reference, fraction),
                        "kappa": sub[0]["kappa"] if sub else math.nan,
                        "positive_fraction": sub[0]["positive_fraction"] if sub else math.nan,
                        "best_subspace_acc": max((r["test_acc"] for r in sub), default=math.nan)})
    return out
