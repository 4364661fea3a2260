r"""How similar solutions are: linear CKA of their representations, distances in weight space.

Linear centered kernel alignment (Kornblith et al. 2019) compares two representations of the
same :math:`n` inputs, :math:`X \in \mathbb{R}^{n \times p}` and :math:`Y \in \mathbb{R}^{n
\times q}`, after centring every column:

.. math::

    \mathrm{CKA}(X, Y) = \frac{\lVert Y^\top X \rVert_F^2}
                              {\lVert X^\top X \rVert_F \, \lVert Y^\top Y \rVert_F} \in [0, 1].

It is 1 for :math:`Y = X`, unchanged by an orthogonal transform or an isotropic scaling of either
side, and (unlike CCA) changed by a general invertible linear map. Yang et al. 2021
("Taxonomizing local versus global structure in neural network loss landscapes") measure how
alike the models of different seeds are by the CKA of their outputs on *mixup* inputs,
:math:`\lambda x_i + (1 - \lambda) x_j` with one :math:`\lambda \sim \mathrm{Beta}(16, 16)` per
batch (inputs between the training points, where models can disagree), averaged over ordered
pairs of seeds; high CKA goes with the globally well-connected phases.

Example:
    >>> X = torch.tensor([[1.0], [2.0], [3.0]])
    >>> Y = torch.tensor([[1.0], [0.0], [2.0]])   # centred: (-1, 0, 1) and (0, -1, 1)
    >>> round(linear_cka(X, Y), 6), round(linear_cka(X, 5 * X), 6)  # one column: the squared correlation
    (0.25, 1.0)
"""

from __future__ import annotations

import itertools
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["linear_cka", "mixup_plan", "mixup_inputs", "representations", "seed_cka", "l2_distance", "seed_distance"]


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA of two representations of the same inputs (rows), in float64.

    Args:
        x: ``[n, p]`` (more dimensions are flattened after the first).
        y: ``[n, q]``.

    Raises:
        ValueError: different numbers of rows, fewer than two, or a constant representation
            (CKA is undefined when a side has no variance).
    """
    x = x.detach().reshape(len(x), -1).double()
    y = y.detach().reshape(len(y), -1).double().to(x.device)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"x has {len(x)} rows and y {len(y)}; allowed: the same inputs, at least 2")
    x = x - x.mean(0, keepdim=True)
    y = y - y.mean(0, keepdim=True)
    # the n x n Gram form when features outnumber samples, the feature form otherwise
    if x.shape[1] + y.shape[1] > 2 * len(x):
        kx, ky = x @ x.T, y @ y.T
        cross, nx, ny = (kx * ky).sum(), kx.norm(), ky.norm()
    else:
        cross, nx, ny = (y.T @ x).pow(2).sum(), (x.T @ x).norm(), (y.T @ y).norm()
    if float(nx) == 0.0 or float(ny) == 0.0:
        raise ValueError("a representation is constant over the inputs; CKA is undefined")
    return float(cross / (nx * ny))


def mixup_plan(n: int, *, batch_size: int = 128, alpha: float = 16.0, seed: int = 0) -> tuple[Tensor, Tensor]:
    r"""The partners and weights of :func:`mixup_inputs` for ``n`` rows: ``partner[i]`` (a random
    permutation within each batch of ``batch_size`` rows) and ``lam[i]`` (one
    :math:`\mathrm{Beta}(\alpha, \alpha)` draw per batch, shared by its rows), from ``seed``."""
    if batch_size < 1 or alpha <= 0:
        raise ValueError(f"batch_size = {batch_size}, alpha = {alpha}; allowed: batch_size >= 1, alpha > 0")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    partner, lam = torch.empty(n, dtype=torch.long), torch.empty(n, dtype=torch.float64)
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        partner[start:start + size] = start + torch.randperm(size, generator=gen)
        lam[start:start + size] = float(rng.beta(alpha, alpha))
    return partner, lam


def mixup_inputs(x: Tensor, *, batch_size: int = 128, alpha: float = 16.0, seed: int = 0) -> Tensor:
    r"""Mixup inputs as Yang et al. 2021 compute CKA on: in every batch of ``batch_size`` rows,
    :math:`\lambda x_i + (1 - \lambda) x_{\pi(i)}` for a random permutation :math:`\pi` of the
    batch and one :math:`\lambda \sim \mathrm{Beta}(\alpha, \alpha)` per batch
    (:func:`mixup_plan`, seeded).

    Returns:
        A tensor shaped like ``x`` (on its device and in its dtype).
    """
    partner, lam = mixup_plan(len(x), batch_size=batch_size, alpha=alpha, seed=seed)
    lam = lam.to(x.device, x.dtype).view(-1, *[1] * (x.dim() - 1))
    return lam * x + (1 - lam) * x[partner.to(x.device)]


@torch.no_grad()
def representations(model: nn.Module, x: Tensor, *, layer: str | None = None, softmax: bool = True,
                    batch_size: int = 1024) -> Tensor:
    """A model's representation of inputs ``x`` in eval mode: its softmax outputs (default, what
    Yang et al. plot), its logits (``softmax=False``), or the flattened output of the module named
    ``layer`` (``dict(model.named_modules())`` keys, e.g. ``layers.2``).

    Raises:
        ValueError: ``layer`` is not a module of ``model`` (the message lists some names).
    """
    modules = dict(model.named_modules())
    if layer is not None and layer not in modules:
        names = [n for n in modules if n][:12]
        raise ValueError(f"layer = {layer!r}; allowed: a module name of the model, e.g. {', '.join(names)}")
    was_training = model.training
    model.eval()
    grabbed: list[Tensor] = []
    hook = None
    if layer is not None:
        hook = modules[layer].register_forward_hook(lambda m, i, o: grabbed.append(o.flatten(1)))
    try:
        outs = []
        for i in range(0, len(x), batch_size):
            out = model(x[i:i + batch_size])
            outs.append(grabbed.pop() if layer is not None else (out.softmax(-1) if softmax else out))
        return torch.cat(outs)
    finally:
        if hook is not None:
            hook.remove()
        model.train(was_training)


def seed_cka(models: Sequence[nn.Module], x: Tensor, *, mixup: bool = True, seed: int = 0,
             layer: str | None = None, softmax: bool = True) -> float:
    """Mean linear CKA over ordered pairs ``(i, j), i != j`` of ``models`` (trained with different
    seeds), on mixup inputs made from ``x`` (default) or on ``x`` itself.

    Raises:
        ValueError: fewer than two models.
    """
    if len(models) < 2:
        raise ValueError(f"{len(models)} model(s); allowed: at least 2 (CKA compares pairs of seeds)")
    inputs = mixup_inputs(x, seed=seed) if mixup else x
    reps = [representations(m, inputs, layer=layer, softmax=softmax) for m in models]
    return float(np.mean([linear_cka(reps[i], reps[j]) for i, j in itertools.permutations(range(len(reps)), 2)]))


def l2_distance(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    r""":math:`\lVert \theta_a - \theta_b \rVert_2` over the keys of ``a`` (parameters), in float64."""
    missing = sorted(set(a) - set(b))
    if missing:
        raise ValueError(f"b lacks {missing[0]!r}; allowed: two points of the same parameter space")
    return float(sum((a[k].detach().double() - b[k].detach().double().to(a[k].device)).pow(2).sum()
                     for k in a) ** 0.5)


def seed_distance(points: Sequence[Mapping[str, Tensor]]) -> float:
    """Mean :func:`l2_distance` over pairs of ``points`` (solutions of different seeds)."""
    if len(points) < 2:
        raise ValueError(f"{len(points)} point(s); allowed: at least 2")
    return float(np.mean([l2_distance(p, q) for p, q in itertools.combinations(points, 2)]))
