r"""The Gauss-Newton part of a classifier's Hessian, and Hessians projected onto subspaces.

For the mean cross-entropy :math:`L(\theta) = \frac1N \sum_i \ell(z_i(\theta), y_i)` of logits
:math:`z_i \in \mathbb{R}^C`, the Hessian splits (Fort & Ganguli 2019; Papyan 2019) into

.. math::

    H = \underbrace{\frac1N \sum_i J_i^\top \big(\operatorname{diag} p_i - p_i p_i^\top\big) J_i}_{G}
      \;+\; \frac1N \sum_i \sum_c \frac{\partial \ell}{\partial z_{ic}} \nabla^2_\theta z_{ic},

with :math:`J_i = \partial z_i / \partial \theta` and :math:`p_i = \mathrm{softmax}(z_i)`. The
*G-term* (generalized Gauss-Newton) is positive semi-definite and, Fort & Ganguli argue, holds the
Hessian's :math:`C` outliers. :class:`GaussNewtonOperator` takes products :math:`Gv =
J^\top H_z (J v)` with one ``jvp`` and one ``vjp`` per data batch, on the same interface as
:class:`~lsutils.hessian.HessianOperator` (so Lanczos, traces and densities apply unchanged).

:func:`projected` is :math:`P^\top A P` for a ``D x d`` matrix :math:`P` of orthonormal columns
and any such operator :math:`A`, from :math:`d` products: the curvature a training run confined
to :math:`\theta_0 + P z` sees.

Example:
    >>> import torch
    >>> from lsutils.hessian import HessianOperator
    >>> from lsutils.objectives import ClassifierObjective
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Linear(4, 3).double()            # logits linear in the weights: G = H
    >>> obj = ClassifierObjective(net, torch.randn(20, 4).double(), torch.randint(0, 3, (20,)))
    >>> v = torch.randn(15, dtype=torch.float64)
    >>> bool(torch.allclose(GaussNewtonOperator(obj).matvec(v), HessianOperator(obj).matvec(v)))
    True
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor
from torch.func import jvp, vjp

from .hessian import HessianOperator
from .objectives import ClassifierObjective

__all__ = ["GaussNewtonOperator", "projected"]


class GaussNewtonOperator(HessianOperator):
    r"""Products with the G-term :math:`G = \frac1N \sum_i J_i^\top (\operatorname{diag} p_i - p_i
    p_i^\top) J_i` of a classifier objective (eval mode, its data in its batches).

    Args:
        objective: a :class:`~lsutils.objectives.ClassifierObjective`.
        params: the point (default: the objective's parameters).

    Raises:
        TypeError: ``objective`` is not a classifier (a PINN's loss has no softmax outputs).
    """

    def __init__(self, objective: ClassifierObjective, params: Mapping[str, Tensor] | None = None) -> None:
        if not isinstance(objective, ClassifierObjective):
            raise TypeError(f"objective is a {type(objective).__name__}; allowed: a ClassifierObjective "
                            "(the G-term needs softmax outputs)")
        super().__init__(objective, params, method="forward_over_reverse")

    def matvec(self, v: Tensor) -> Tensor:
        """:math:`Gv` for a flat vector ``v`` of length :attr:`dim`."""
        self.num_products += 1
        obj: ClassifierObjective = self.objective  # type: ignore[assignment]
        tangent = self.unflatten(v)
        out = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for xb, _ in obj._batches():
            def logits(p: Mapping[str, Tensor], xb: Tensor = xb) -> Tensor:
                return obj.forward(p, xb)

            z, jz = jvp(logits, (self.params,), (tangent,))  # J v, per sample [b, C]
            prob = torch.softmax(z, dim=-1)
            hz = prob * jz - prob * (prob * jz).sum(-1, keepdim=True)  # (diag p - p p^T) J v
            _, pullback = vjp(logits, self.params)
            out += self.flatten(pullback(hz)[0])
        return (out / len(obj.x)).detach()


def projected(op: HessianOperator, basis: Tensor) -> Tensor:
    r""":math:`P^\top A P` (``d x d``, symmetrized) for ``basis`` :math:`P` (``[D, d]``, orthonormal
    columns) and the operator ``op`` (:math:`A`), from ``d`` products.

    Raises:
        ValueError: ``basis`` is not ``[op.dim, d]``.
    """
    if basis.dim() != 2 or basis.shape[0] != op.dim:
        raise ValueError(f"basis has shape {tuple(basis.shape)}; allowed: [{op.dim}, d] (one column per direction)")
    p = basis.to(op.device, op.dtype)
    ap = torch.stack([op.matvec(p[:, j]) for j in range(p.shape[1])], dim=1)
    m = p.T @ ap
    return (m + m.T) / 2
