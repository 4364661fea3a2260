r"""The 1-D convection problem of Krishnapriyan et al. 2021, a PINN benchmark.

.. math::

    u_t + \beta u_x = 0, \quad x \in [0, 2\pi),\ t \in [0, 1], \qquad
    u(x, 0) = \sin x, \qquad u(0, t) = u(2\pi, t),

with exact solution :math:`u(x, t) = \sin(x - \beta t)`. Xie et al. 2024 use it for the
loss landscapes of physics-informed networks: the network is trained on the residual at
random collocation points and on the initial and boundary conditions (see
:class:`~lsutils.objectives.PinnObjective`), and judged by the relative L2 error
:math:`\lVert u_\theta - u \rVert_2 / \lVert u \rVert_2` on a 256x100 grid.

Example:
    >>> problem = ConvectionProblem(beta=30.0)
    >>> x, t, points = problem.grid()
    >>> points.shape
    torch.Size([25600, 2])
    >>> float(relative_l2_error(problem.exact_field(), problem.exact_field()))
    0.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

__all__ = ["ConvectionProblem", "PinnPoints", "relative_l2_error", "TWO_PI"]

TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class ConvectionProblem:
    """The periodic convection problem ``u_t + beta u_x = 0``, ``u(x, 0) = sin x``.

    Attributes:
        beta: convection coefficient (>= 0).
        nx: evaluation grid points in x, on ``[0, 2 pi)`` (endpoint excluded).
        nt: evaluation grid points in t, on ``[0, 1]`` (both ends included).
    """

    beta: float
    nx: int = 256
    nt: int = 100

    def __post_init__(self) -> None:
        if not (isinstance(self.beta, (int, float)) and math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta = {self.beta!r}; allowed: a finite number >= 0")
        if self.nx < 2 or self.nt < 2:
            raise ValueError(f"nx = {self.nx}, nt = {self.nt}; allowed: integers >= 2")

    def exact(self, x: Tensor, t: Tensor) -> Tensor:
        """The exact solution ``sin(x - beta t)``."""
        return torch.sin(x - self.beta * t)

    def grid(self, device: torch.device | str = "cpu",
             dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor, Tensor]:
        """The evaluation grid: ``x`` [nx], ``t`` [nt] and points ``[nt * nx, 2]`` (t-major)."""
        x = torch.linspace(0.0, TWO_PI, self.nx + 1, device=device, dtype=dtype)[:-1]
        t = torch.linspace(0.0, 1.0, self.nt, device=device, dtype=dtype)
        tt, xx = torch.meshgrid(t, x, indexing="ij")
        return x, t, torch.stack([xx.reshape(-1), tt.reshape(-1)], dim=1)

    def residual(self, u: Callable[[Tensor], Tensor], points: Tensor) -> Tensor:
        r"""The PDE residual :math:`u_t + \beta u_x` of a field ``u: [N, 2] -> [N]`` at ``points``
        (``[N, 2]`` of ``(x, t)``), by reverse-mode autograd: an independent check of a
        solution (the exact one gives zero) and of the objective's hand-carried derivative.
        """
        xt = points.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(u(xt).sum(), xt)
        return g[:, 1] + self.beta * g[:, 0]

    def exact_field(self, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> Tensor:
        """The exact solution on the grid, shape ``[nt, nx]``."""
        _, _, pts = self.grid(device, dtype)
        return self.exact(pts[:, 0], pts[:, 1]).reshape(self.nt, self.nx)

    def sample(self, n_collocation: int, n_initial: int, n_boundary: int, seed: int,
               device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> "PinnPoints":
        """Training points: uniform random collocation points (seeded), evenly spaced
        initial points on ``[0, 2 pi)`` and boundary times on ``[0, 1]``."""
        for name, n in (("n_collocation", n_collocation), ("n_initial", n_initial),
                        ("n_boundary", n_boundary)):
            if n < 1:
                raise ValueError(f"{name} = {n}; allowed: integers >= 1")
        g = torch.Generator().manual_seed(seed)
        u = torch.rand(n_collocation, 2, generator=g, dtype=torch.float64)
        interior = torch.stack([u[:, 0] * TWO_PI, u[:, 1]], dim=1)
        x0 = torch.linspace(0.0, TWO_PI, n_initial + 1, dtype=torch.float64)[:-1]
        initial = torch.stack([x0, torch.zeros_like(x0)], dim=1)
        tb = torch.linspace(0.0, 1.0, n_boundary, dtype=torch.float64)
        left = torch.stack([torch.zeros_like(tb), tb], dim=1)
        right = torch.stack([torch.full_like(tb, TWO_PI), tb], dim=1)
        cast = dict(device=device, dtype=dtype)
        return PinnPoints(interior.to(**cast), initial.to(**cast), torch.sin(x0).to(**cast),
                          left.to(**cast), right.to(**cast))


@dataclass
class PinnPoints:
    """Fixed training points: ``[N, 2]`` arrays of ``(x, t)``."""

    interior: Tensor
    initial: Tensor
    initial_values: Tensor
    boundary_left: Tensor
    boundary_right: Tensor


def relative_l2_error(pred: Tensor, exact: Tensor) -> Tensor:
    """``||pred - exact||_2 / ||exact||_2`` over all entries."""
    if pred.shape != exact.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but exact has {tuple(exact.shape)}")
    return torch.linalg.vector_norm(pred - exact) / torch.linalg.vector_norm(exact)
