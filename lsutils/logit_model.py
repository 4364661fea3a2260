r"""A random model of logit gradients: C outliers and gradient confinement, in a few lines.

Fort & Ganguli 2019 explain the Hessian's outliers by the structure of the *logit gradients*
:math:`\nabla_\theta z_{ik}` (sample :math:`i`, logit :math:`k`): they cluster, and the G-term

.. math:: G = \frac1N \sum_i J_i^\top \big(\operatorname{diag} p_i - p_i p_i^\top\big) J_i

(which is all of :math:`H` when the logits are linear in the weights, and most of it when their
curvature is weak) inherits the clusters' means as a few large eigenvalues. This module builds
the smallest model with that structure: a linear softmax readout :math:`z_i = W h_i` on random
features that are *class means plus noise*,

.. math:: h_i = \mu_0 + \mu_{y_i} + \sigma \varepsilon_i, \qquad
   W = \beta \sum_c e_c \, \mu_c^\top / \lVert\mu_c\rVert^2,

so the logit gradient :math:`\partial z_{ik} / \partial W = e_k \otimes h_i` clusters by logit
index :math:`k` (different :math:`k` are orthogonal) and, within each, by class (the means
:math:`\mu_0 + \mu_c`). :math:`\beta` is the logit scale. Since the logits are linear in
:math:`W`, :math:`H = G` exactly, and the dense Hessian (:math:`D = C F`) is cheap.

What it shows (:func:`analyze`), for well-separated class means:

- at a moderate logit scale, exactly :math:`C` outliers, one per class: the class mean's
  :math:`\bar A_c \otimes (\mu_0 + \mu_c)(\mu_0 + \mu_c)^\top` has one large eigenvalue when the
  probabilities favour the class;
- at :math:`\beta = 0` (uniform probabilities, as at initialization) :math:`C - 1`: the softmax
  is blind to a shift of all logits, so :math:`\bar A \mathbf 1 = 0` removes one direction;
- as :math:`\beta` grows the probabilities freeze, :math:`\operatorname{diag} p - p p^\top \to 0`
  and all curvature falls (late training);
- the gradient :math:`\frac1N\sum_i (p_i - e_{y_i}) \otimes h_i` lies almost entirely in the
  top-:math:`C` eigenspace (gradient confinement).

Example:
    >>> out = analyze(LogitModel(classes=4, features=24, per_class=30, seed=0))
    >>> out["outliers"], out["max_gh_difference"] < 1e-10
    (4, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .curvature import count_outliers, gap_ratio
from .hessian import dense_hessian
from .objectives import ClassifierObjective
from .settings import check, setting

__all__ = ["LogitModel", "analyze"]


@dataclass(frozen=True)
class LogitModel:
    """Class means plus noise, read out by a linear softmax layer aligned with the means."""

    classes: int = setting(10, lo=2, doc="number of classes C")
    features: int = setting(64, lo=2, doc="feature dimension F (D = C F weights)")
    per_class: int = setting(40, lo=1, doc="samples per class")
    common: float = setting(1.0, lo=0.0, doc="norm of the mean all features share, mu_0")
    separation: float = setting(3.0, lo=0.0, lo_open=True, doc="norm of each class's own mean mu_c")
    noise: float = setting(1.0, lo=0.0, doc="norm of the feature noise sigma * sqrt(F)")
    logit_scale: float = setting(3.0, lo=0.0, doc="beta: the readout's scale (0: uniform probabilities)")
    seed: int = setting(0, lo=0, doc="the draw")

    def __post_init__(self) -> None:
        check(self)

    def sample(self) -> tuple[Tensor, Tensor, Tensor]:
        """Features ``[C * per_class, F]``, labels and the readout ``W`` (``[C, F]``), float64."""
        g = torch.Generator().manual_seed(self.seed)
        f, c = self.features, self.classes
        mu0 = torch.randn(f, generator=g, dtype=torch.float64)
        mu0 = mu0 * self.common / mu0.norm()
        mus = torch.randn(c, f, generator=g, dtype=torch.float64)
        mus = mus * self.separation / mus.norm(dim=1, keepdim=True)
        y = torch.arange(c).repeat_interleave(self.per_class)
        h = mu0 + mus[y] + self.noise * torch.randn(len(y), f, generator=g, dtype=torch.float64) / f ** 0.5
        return h, y, self.logit_scale * mus / self.separation ** 2

    def objective(self) -> ClassifierObjective:
        """The mean cross-entropy of the readout over the features, as a function of ``W``."""
        h, y, w = self.sample()
        net = torch.nn.Linear(self.features, self.classes, bias=False).double()
        with torch.no_grad():
            net.weight.copy_(w)
        return ClassifierObjective(net, h, y, batch_size=None)


def analyze(model: LogitModel, k: int | None = None) -> dict[str, Any]:
    r"""The model's exact spectrum and what Fort & Ganguli predict of it.

    Returns:
        ``eigenvalues`` (the top ``k``, default :math:`3C`, descending), ``outliers`` (count at the
        largest log-gap), ``gap_at_c`` and ``typical_gap``, ``fractions`` (the gradient's cumulative
        fraction in the top-:math:`k` eigenspace), ``accuracy``, ``mean_confidence`` (mean largest
        probability) and ``max_gh_difference`` (:math:`\max |H - G|`, 0 up to rounding).
    """
    obj = model.objective()
    k = k or 3 * model.classes
    hess = dense_hessian(obj)
    x = obj.x
    p = torch.softmax(obj.forward(obj.params, x), dim=1)
    a = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    gn = torch.einsum("ikl,if,ig->kflg", a, x, x).reshape(hess.shape) / len(x)  # J_i = I_C (x) h_i^T
    vals, vecs = torch.linalg.eigh(hess)
    vals, vecs = vals.flip(0)[:k], vecs.flip(1)[:, :k]
    g = ((p - torch.nn.functional.one_hot(obj.y, model.classes)).unsqueeze(2) * x.unsqueeze(1)).mean(0).reshape(-1)
    frac = torch.cumsum((vecs.T @ g).pow(2), 0) / g.pow(2).sum()
    gap, typical = gap_ratio(vals.numpy(), model.classes)
    return {"eigenvalues": vals.tolist(), "outliers": count_outliers(vals.numpy()), "gap_at_c": gap,
            "typical_gap": typical, "fractions": frac.tolist(), "accuracy": obj.metrics()["accuracy"],
            "mean_confidence": float(p.max(1).values.mean()), "max_gh_difference": float((hess - gn).abs().max()),
            "num_params": hess.shape[0]}
