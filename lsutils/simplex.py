r"""Low-loss simplexes through a set of solutions (Benton et al. 2021; Fort & Jastrzebski 2019).

Fort & Jastrzebski predict that the low-loss set joins not only pairs of solutions but a whole
**set** of them. Following Benton et al.'s star complexes, the :math:`n` trained solutions
:math:`\theta_1, \dots, \theta_n` are fixed vertices and :math:`k` shared **connector**
vertices :math:`c_1, \dots, c_k` are free; the complex is the union of the :math:`n` simplices

.. math:: S_i = \mathrm{conv}(\theta_i, c_1, \dots, c_k), \qquad i = 1, \dots, n,

so every pair of solutions is joined through the connectors. The connectors are trained by
sampling points uniformly in the simplices (a simplex uniformly, then Dirichlet(1, ..., 1)
weights) and minimizing the **mean** training loss over the samples of a step, optionally
minus :math:`\lambda` times the mean log-volume of the simplices (a larger low-loss region):

.. math:: \min_{c}\; \frac{1}{m}\sum_{s=1}^{m} L\Big(\sum_j w_{sj} v_{sj}\Big)
          - \frac{\lambda}{n} \sum_i \log \mathrm{vol}(S_i),
   \qquad \mathrm{vol}(S) = \frac{\sqrt{\det G}}{k!}, \; G = E E^\top,

with :math:`E` the edge vectors :math:`c_j - \theta_i` of a simplex. The connectors start at the
centroid of the solutions, each moved by a small random offset (so that the simplices have
volume when :math:`k > 1`). A **2-D cut through three solutions** unfolds the complex onto a
triangle: its corners are the three solutions and its centre the mean connector :math:`\bar c`;
the point with barycentric weights :math:`w` lies in the sub-triangle
:math:`(\theta_i, \theta_j, \bar c)` opposite the smallest weight :math:`w_l` and maps to
:math:`(w_i - w_l)\theta_i + (w_j - w_l)\theta_j + 3 w_l \bar c`. Before training
(:math:`\bar c` the centroid) this is the plane through the three solutions; after, it holds the
trained spokes :math:`\theta_i \to \bar c`.

Example:
    >>> import torch
    >>> from lsutils.objectives import FunctionObjective
    >>> obj = FunctionObjective(lambda t: (t ** 2).sum(), torch.zeros(3), key="bowl")
    >>> vertices = [{"theta": torch.eye(3)[i]} for i in range(3)]
    >>> star = StarComplex.start(vertices, SimplexConfig(connectors=1, spread=0.0))
    >>> [round(float(v), 4) for v in star.connectors[0]["theta"]]  # at the centroid
    [0.3333, 0.3333, 0.3333]
    >>> xy, points = star.cut(resolution=2)
    >>> len(points), bool(torch.allclose(points[0]["theta"], vertices[0]["theta"]))
    (6, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from . import artifacts
from .connectivity import CurveConfig, evaluate_points, optimize
from .directions import flatten
from .objectives import Objective, Params
from .settings import check, same_as, setting

__all__ = ["SimplexConfig", "StarComplex", "fit_simplex", "structure_samples"]


@dataclass(frozen=True)
class SimplexConfig:
    """How a star complex through a set of solutions is trained and evaluated."""

    connectors: int = setting(1, lo=1, doc="shared free vertices (each simplex: a solution and all of them)")
    steps: int = setting(1000, lo=0, doc="optimization steps")
    samples: int = setting(1, lo=1, doc="points sampled in the simplices per step (the loss is their mean)")
    volume: float = setting(0.0, lo=0.0, doc="weight of the mean log-volume of the simplices (0: none)")
    optimizer: str = same_as(CurveConfig, "optimizer")
    lr: float = same_as(CurveConfig, "lr")
    momentum: float = same_as(CurveConfig, "momentum")
    spread: float = setting(0.05, lo=0.0, doc="initial random offset of the connectors, in mean solution distances")
    eval_samples: int = setting(32, lo=1, doc="uniform samples of the structure in its report")
    cut_resolution: int = setting(8, lo=1, doc="lattice steps per side of the 2-D cut")
    bn: str = same_as(CurveConfig, "bn")
    bn_samples: int = same_as(CurveConfig, "bn_samples")
    seed: int = same_as(CurveConfig, "seed")

    def __post_init__(self) -> None:
        check(self)


@dataclass
class StarComplex:
    """Fixed solutions and shared connectors: the simplices ``conv(vertex_i, connectors)``."""

    vertices: list[Params]
    connectors: list[Params]

    @classmethod
    def start(cls, vertices: Sequence[Mapping[str, Tensor]], config: SimplexConfig) -> "StarComplex":
        """Connectors at the centroid of ``vertices``, each offset in a random direction by ``spread``
        times the mean distance between the solutions."""
        if len(vertices) < 2:
            raise ValueError(f"{len(vertices)} vertices; allowed: at least 2 solutions")
        names = list(vertices[0])
        flat = torch.stack([flatten(v, names) for v in vertices])
        centre = flat.mean(0)
        scale = float(torch.pdist(flat).mean())
        gen = torch.Generator().manual_seed(config.seed)
        connectors = []
        for _ in range(config.connectors):
            offset = torch.zeros_like(centre)
            if config.spread > 0:
                r = torch.randn(centre.shape, generator=gen, dtype=centre.dtype).to(centre.device)
                offset = config.spread * scale * r / r.norm()
            connectors.append(_unflatten(centre + offset, vertices[0]))
        return cls([dict(v) for v in vertices], connectors)

    def simplex(self, i: int, connectors: Sequence[Mapping[str, Tensor]] | None = None) -> list[Mapping[str, Tensor]]:
        return [self.vertices[i], *(self.connectors if connectors is None else connectors)]

    def log_volumes(self, connectors: Sequence[Mapping[str, Tensor]] | None = None) -> Tensor:
        """:math:`\\log \\mathrm{vol}(S_i)` of every simplex, differentiable in the connectors."""
        names = list(self.vertices[0])
        out = []
        for i in range(len(self.vertices)):
            v = [flatten(p, names).double() for p in self.simplex(i, connectors)]
            edges = torch.stack([p - v[0] for p in v[1:]])
            k = len(edges)
            out.append(0.5 * torch.logdet(edges @ edges.T) - math.lgamma(k + 1))
        return torch.stack(out)

    def sample(self, gen: torch.Generator, connectors: Sequence[Mapping[str, Tensor]] | None = None,
               probs: Tensor | None = None) -> Params:
        """A point uniform in a simplex chosen uniformly, or with probabilities ``probs`` (those of
        :meth:`volume_probs`: uniform on the whole structure)."""
        if probs is not None:
            i = int(torch.multinomial(probs, 1, generator=gen))
        else:
            i = int(torch.randint(len(self.vertices), (), generator=gen))
        nodes = self.simplex(i, connectors)
        w = -torch.log(torch.rand(len(nodes), generator=gen, dtype=torch.float64))  # Dirichlet(1, ..., 1)
        w = (w / w.sum()).tolist()
        return {k: sum(wj * node[k] for wj, node in zip(w, nodes)) for k in nodes[0]}

    def volume_probs(self) -> Tensor:
        """Each simplex's share of the structure's volume."""
        return torch.softmax(self.log_volumes().detach().float(), 0)

    def cut(self, resolution: int) -> tuple[np.ndarray, list[Params]]:
        """The 2-D cut through three solutions (module docstring): lattice points with
        ``resolution`` steps per side as 2-D coordinates on an equilateral triangle (corners:
        the solutions), and their parameter points."""
        if len(self.vertices) != 3:
            raise ValueError(f"{len(self.vertices)} vertices; allowed: exactly 3 for a cut through three solutions")
        centre = {k: sum(c[k] for c in self.connectors) / len(self.connectors) for k in self.vertices[0]}
        corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])
        xy, points = [], []
        for i in range(resolution + 1):
            for j in range(resolution + 1 - i):
                w = np.array([resolution - i - j, i, j], dtype=float) / resolution
                low = int(np.argmin(w))
                others = [m for m in range(3) if m != low]
                coef = {m: w[m] - w[low] for m in others}
                points.append({k: coef[others[0]] * self.vertices[others[0]][k] + coef[others[1]] *
                               self.vertices[others[1]][k] + 3 * w[low] * centre[k] for k in centre})
                xy.append(w @ corners)
        return np.array(xy), points

    def as_state(self) -> dict[str, Any]:
        return {"connectors": [{k: v.detach().cpu() for k, v in c.items()} for c in self.connectors]}


def _unflatten(v: Tensor, like: Mapping[str, Tensor]) -> Params:
    out, offset = {}, 0
    for k, t in like.items():
        out[k] = v[offset:offset + t.numel()].view_as(t).to(t.dtype).clone()
        offset += t.numel()
    return out


def fit_simplex(objective: Objective, vertices: Sequence[Mapping[str, Tensor]], config: SimplexConfig, *,
                path: Path | None = None, profile: str | None = None,
                progress: bool = True) -> tuple[StarComplex, StarComplex, list[float]]:
    """Train the connectors of a star complex through ``vertices`` (module docstring). Returns the
    complex before and after training and the loss of every step; ``path`` makes it resumable
    and cached."""
    start = StarComplex.start(vertices, config)

    def step_loss(live: list[Params], gen: torch.Generator) -> Tensor:
        loss = sum(objective.train_loss(start.sample(gen, live), gen) for _ in range(config.samples)) / config.samples
        if config.volume > 0:
            loss = loss - config.volume * start.log_volumes(live).mean().to(loss.dtype)
        return loss

    key = {"what": "star complex", "objective": objective.data_key(),
           "vertices": [artifacts.digest(dict(v)) for v in vertices]}
    connectors, history = optimize(start.connectors, step_loss, config, path=path, key=key, profile=profile,
                                   progress=progress, desc="simplex")
    return start, StarComplex(start.vertices, connectors), history


def structure_samples(objective: Objective, complex_: StarComplex, config: SimplexConfig, *,
                      progress: bool = False) -> dict[str, np.ndarray]:
    """Loss and metrics at ``eval_samples`` points uniform on the whole structure (simplices in
    proportion to their volume), drawn with the config's seed: the same draws before and after
    training when the volumes agree."""
    gen = torch.Generator().manual_seed(config.seed + 1)
    with torch.no_grad():
        probs = complex_.volume_probs()
        points = [complex_.sample(gen, probs=probs) for _ in range(config.eval_samples)]
    return evaluate_points(objective, points, bn=config.bn, bn_samples=config.bn_samples, progress=progress,
                           desc="structure")
