r"""Fort & Jastrzebski's wedge model of the loss landscape (2019), in a few lines of torch.

The low-loss set is modelled as a union of :math:`N` high-dimensional **wedges** in
:math:`\mathbb{R}^D`. Wedge :math:`i` has :math:`n` *short* directions, the coordinates
:math:`S_i` (a random subset), and :math:`D - n` long ones; it is narrow along the short
directions, and its width grows with the distance travelled along the long ones:

.. math:: L(\theta) = \min_i \frac{\|\theta_{S_i}\|^2}{w_i(\theta)^2}, \qquad
          w_i(\theta) = \varepsilon + \gamma \, \frac{\|\theta_{\bar S_i}\|}{\sqrt{D - n}} .

Wedge :math:`i` is the neighbourhood of the :math:`(D-n)`-dimensional subspace
:math:`\theta_{S_i} = 0`; two wedges meet in :math:`\theta_{S_i \cup S_j} = 0`, so together
they form one connected structure. What the model predicts, and the chapter measures:

- gradient descent from a random point reaches a wedge (the loss goes to zero);
- training in a random affine subspace :math:`\theta_0 + P z`, :math:`z \in \mathbb{R}^d`,
  reaches zero loss only when :math:`d \ge n`: a :math:`d`-dimensional subspace meets a
  subspace of codimension :math:`n` only then (the *threshold dimension*);
- two optima in different wedges :math:`i, j` are joined by two segments through a point of
  :math:`\theta_{S_i \cup S_j} = 0` at zero loss, while the straight line between them rises.

Example:
    >>> model = WedgeModel(dim=20, wedges=3, short=4)
    >>> theta = descend(model, torch.randn(2, 20, generator=torch.Generator().manual_seed(0)), steps=1000)
    >>> a, b = two_optima(model, seed=0, steps=1000)
    >>> bool((model.loss(theta) < 1e-6).all()), model.wedge_of(a) != model.wedge_of(b)
    (True, True)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .objectives import FunctionObjective
from .settings import check, setting

__all__ = ["WedgeModel", "descend", "two_optima", "subspace_sweep", "threshold_dimension", "intersection_point"]


@dataclass(frozen=True)
class WedgeModel:
    """The wedge landscape: ``wedges`` wedges in ``dim`` dimensions, each with ``short`` short
    coordinates drawn with ``seed``, of width ``width`` at the origin growing by ``growth``."""

    dim: int = setting(100, lo=2, doc="dimension D of the space")
    wedges: int = setting(10, lo=1, doc="number N of wedges")
    short: int = setting(10, lo=1, doc="short directions n per wedge")
    width: float = setting(0.05, lo=0.0, lo_open=True, doc="width epsilon of a wedge at the origin")
    growth: float = setting(0.5, lo=0.0, doc="growth gamma of the width along the long directions")
    seed: int = setting(0, lo=0, doc="which coordinates are short in each wedge")

    def __post_init__(self) -> None:
        check(self)
        if self.short >= self.dim:
            raise ValueError(f"short = {self.short}; allowed: fewer than dim = {self.dim}")
        _ = self.mask  # drawn once, outside any vmap

    @functools.cached_property
    def mask(self) -> Tensor:
        """``[N, D]``: 1 where a coordinate is short in a wedge."""
        gen = torch.Generator().manual_seed(self.seed)
        out = torch.zeros(self.wedges, self.dim)
        for i in range(self.wedges):
            out[i, torch.randperm(self.dim, generator=gen)[:self.short]] = 1.0
        return out

    def wedge_losses(self, theta: Tensor) -> Tensor:
        """Each wedge's loss at ``theta [..., D]``: ``[..., N]``."""
        m = self.mask.to(theta.device, theta.dtype)
        sq = theta.unsqueeze(-2) ** 2
        short = (sq * m).sum(-1)
        long = (sq * (1 - m)).sum(-1).clamp_min(0).sqrt() / math.sqrt(self.dim - self.short)
        return short / (self.width + self.growth * long) ** 2

    def loss(self, theta: Tensor) -> Tensor:
        """:math:`L(\\theta)` at ``theta [..., D]``."""
        return self.wedge_losses(theta).min(-1).values

    def wedge_of(self, theta: Tensor) -> int:
        """The wedge whose loss is lowest at ``theta [D]``."""
        return int(self.wedge_losses(theta).argmin())

    def objective(self, theta: Tensor) -> FunctionObjective:
        """The model as an objective over ``{"theta": ...}`` (for the curve and connector code)."""
        return FunctionObjective(self.loss, theta, key=f"wedges {self}")


def descend(model: WedgeModel, starts: Tensor, steps: int = 2000, lr: float = 0.01) -> Tensor:
    """Adam on :math:`L` from each row of ``starts [R, D]`` at once; the end points ``[R, D]``."""
    theta = starts.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        model.loss(theta).sum().backward()
        opt.step()
    return theta.detach()


def two_optima(model: WedgeModel, seed: int = 0, tries: int = 16, steps: int = 2000) -> tuple[Tensor, Tensor]:
    """Two optima in different wedges: :func:`descend` from ``tries`` random points
    (:math:`N(0, I)`, seeded), the first end point and the first one in another wedge."""
    if model.wedges < 2:
        raise ValueError(f"wedges = {model.wedges}; allowed: at least 2 for optima in different wedges")
    ends = descend(model, torch.randn(tries, model.dim, generator=torch.Generator().manual_seed(seed)), steps)
    first = model.wedge_of(ends[0])
    other = next((e for e in ends[1:] if model.wedge_of(e) != first), None)
    if other is None:
        raise RuntimeError(f"all {tries} runs ended in wedge {first}; allowed: more tries")
    return ends[0], other


def subspace_sweep(model: WedgeModel, dims: Sequence[int], trials: int = 3, steps: int = 1500, lr: float = 0.05,
                   radius: float = 1.0, seed: int = 0) -> np.ndarray:
    """Training in random affine subspaces :math:`\\theta_0 + P z` (Li et al. 2018's intrinsic
    dimension): for each dimension ``d`` in ``dims`` and each trial, a random start
    :math:`\\theta_0 \\sim N(0, \\text{radius}^2 I)` and a random orthonormal :math:`P \\in
    \\mathbb{R}^{D \\times d}`; Adam on :math:`z` from 0, all runs at once. Returns the final
    losses, ``[len(dims), trials]``."""
    dims = [int(d) for d in dims]
    if not dims or min(dims) < 1 or max(dims) > model.dim:
        raise ValueError(f"dims = {dims}; allowed: integers in [1, {model.dim}]")
    gen = torch.Generator().manual_seed(seed)
    d_max = max(dims)
    starts, bases, masks = [], [], []
    for d in dims:
        for _ in range(trials):
            starts.append(radius * torch.randn(model.dim, generator=gen))
            q, _ = torch.linalg.qr(torch.randn(model.dim, d, generator=gen))
            bases.append(torch.nn.functional.pad(q, (0, d_max - d)))
            masks.append((torch.arange(d_max) < d).float())
    theta0, basis, mask = torch.stack(starts), torch.stack(bases), torch.stack(masks)
    z = torch.zeros(len(starts), d_max, requires_grad=True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        model.loss(theta0 + (basis @ (z * mask).unsqueeze(-1)).squeeze(-1)).sum().backward()
        opt.step()
    with torch.no_grad():
        final = model.loss(theta0 + (basis @ (z * mask).unsqueeze(-1)).squeeze(-1))
    return final.reshape(len(dims), trials).numpy()


def threshold_dimension(dims: Sequence[int], losses: np.ndarray, tol: float = 1e-3) -> int | None:
    """The smallest dimension from which on every larger one reaches a median final loss below
    ``tol`` (``None`` when the largest does not)."""
    ok = np.median(np.asarray(losses), axis=1) < tol
    if not ok[-1]:
        return None
    i = len(ok) - 1
    while i > 0 and ok[i - 1]:
        i -= 1
    return int(dims[i])


def intersection_point(model: WedgeModel, a: Tensor, b: Tensor) -> Tensor:
    """The chord's midpoint with the short coordinates of ``a``'s and ``b``'s wedges set to zero:
    a point where both wedges meet (zero loss), the bend of a two-segment path."""
    m = model.mask
    short = (m[model.wedge_of(a)] + m[model.wedge_of(b)]).clamp(max=1.0)
    return (a + b) / 2 * (1 - short)
