r"""Random affine subspaces of weight space, and training confined to them.

Li et al. 2018 (intrinsic dimension) and Fort & Ganguli 2019 (the Goldilocks zone) train only
:math:`z \in \mathbb{R}^d` in :math:`\theta = \theta_0 + P z`, with :math:`P` a random
:math:`D \times d` matrix of orthonormal columns. For a network of :math:`D` weights, :math:`P`
may not fit in memory, so :class:`RandomSubspace` never builds it whole: its rows come in
blocks, each drawn from its own seeded generator,

.. math:: P = G\,(G^\top G)^{-1/2}, \qquad G_{ij} \sim \mathcal{N}(0, 1),

where :math:`G^\top G` (:math:`d \times d`) is accumulated block by block once, so
:math:`P^\top P = I` exactly and :math:`Pz`, :math:`P^\top g` stream over the blocks with
:math:`O(\text{block} \cdot d)` memory.

Example:
    >>> s = RandomSubspace(dim=1000, rank=5, seed=0, block_rows=128)
    >>> p = s.dense()
    >>> bool(torch.allclose(p.T @ p, torch.eye(5, dtype=torch.float64), atol=1e-12))
    True
    >>> z = torch.randn(5, dtype=torch.float64)
    >>> bool(torch.allclose(s.project(s.lift(z)), z, atol=1e-12))  # P^T P z = z
    True
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

__all__ = ["RandomSubspace", "train_in_subspace", "minimize", "OPTIMIZERS"]

#: the optimizers of :func:`train_in_subspace`.
OPTIMIZERS = ("sgd", "adam")


class RandomSubspace:
    """A seeded random ``dim x rank`` matrix :math:`P` of orthonormal columns, in row blocks.

    Args:
        dim: :math:`D`, the number of weights.
        rank: :math:`d`, the subspace's dimension (at most ``dim``).
        seed: the draw (block ``b`` uses the generator seeded with ``seed * 1_000_003 + b``).
        block_rows: rows generated at once.
        dtype: float64 by default (the orthonormalization's accuracy).
    """

    def __init__(self, dim: int, rank: int, seed: int = 0, block_rows: int = 65536,
                 dtype: torch.dtype = torch.float64) -> None:
        if not 1 <= rank <= dim:
            raise ValueError(f"rank = {rank}, dim = {dim}; allowed: 1 <= rank <= dim")
        if block_rows < 1:
            raise ValueError(f"block_rows = {block_rows}; allowed: an integer >= 1")
        self.dim, self.rank, self.seed, self.block_rows, self.dtype = dim, rank, seed, block_rows, dtype
        gram = torch.zeros(rank, rank, dtype=torch.float64)
        for g in self._blocks():
            gram += g.T @ g
        vals, vecs = torch.linalg.eigh(gram)
        self._whiten = (vecs / vals.sqrt()) @ vecs.T  # (G^T G)^{-1/2}, symmetric

    def _blocks(self):
        for b, start in enumerate(range(0, self.dim, self.block_rows)):
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + b)
            rows = min(self.block_rows, self.dim - start)
            yield torch.randn(rows, self.rank, generator=gen, dtype=torch.float64)

    def blocks(self):
        """The row blocks of :math:`P`, in order (each ``[rows, rank]``)."""
        for g in self._blocks():
            yield (g @ self._whiten).to(self.dtype)

    def lift(self, z: Tensor) -> Tensor:
        """:math:`Pz`, a ``[dim]`` vector, differentiable in ``z``."""
        return torch.cat([blk.to(z.device, z.dtype) @ z for blk in self.blocks()])

    def project(self, g: Tensor) -> Tensor:
        """:math:`P^\\top g` for a ``[dim]`` vector."""
        out, start = torch.zeros(self.rank, dtype=g.dtype, device=g.device), 0
        for blk in self.blocks():
            out = out + blk.to(g.device, g.dtype).T @ g[start:start + len(blk)]
            start += len(blk)
        return out

    def dense(self) -> Tensor:
        """:math:`P` whole (tests and small models)."""
        return torch.cat(list(self.blocks()))


def train_in_subspace(loss: Callable[[Tensor], Tensor], theta0: Tensor, subspace: RandomSubspace, *,
                      steps: int, lr: float, momentum: float = 0.9, optimizer: str = "sgd",
                      basis: Tensor | None = None) -> tuple[Tensor, list[float]]:
    r"""Minimize :math:`L(\theta_0 + P z)` over :math:`z` (from 0) on a flat-vector loss, by SGD with
    ``momentum`` or by Adam (``optimizer``); returns the final :math:`\theta` and the loss of every
    step (``loss`` may draw a new minibatch at every call). ``basis``: :math:`P` whole, when it fits
    in memory (faster than regenerating its blocks at every step)."""
    if theta0.numel() != subspace.dim:
        raise ValueError(f"theta0 has {theta0.numel()} entries; allowed: subspace.dim = {subspace.dim}")
    p = None if basis is None else basis.to(theta0.device, theta0.dtype)
    lift = subspace.lift if p is None else (lambda z: p @ z)
    z0 = torch.zeros(subspace.rank, dtype=theta0.dtype, device=theta0.device)
    z, history = minimize(lambda z: loss(theta0 + lift(z)), z0, steps=steps, lr=lr, momentum=momentum,
                          optimizer=optimizer)
    with torch.no_grad():
        return (theta0 + lift(z)).detach(), history


def minimize(loss: Callable[[Tensor], Tensor], start: Tensor, *, steps: int, lr: float, momentum: float = 0.9,
             optimizer: str = "sgd") -> tuple[Tensor, list[float]]:
    """Minimize ``loss`` over a flat tensor from ``start`` by SGD with ``momentum`` or by Adam;
    returns the final tensor and the loss of every step."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer = {optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
    x = start.detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=lr, momentum=momentum) if optimizer == "sgd" else torch.optim.Adam([x], lr=lr)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        value = loss(x)
        value.backward()
        opt.step()
        history.append(float(value.detach()))
    return x.detach(), history
