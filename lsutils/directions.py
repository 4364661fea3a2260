r"""Directions in weight space for low-dimensional slices of the loss.

A landscape is :math:`f(a) = L(\theta + a_1 d_1 + \dots + a_n d_n)`; this module makes
the :math:`d_i`:

- :func:`random_direction`: a Gaussian direction with *filter normalization* (Li et al.
  2018, *Visualizing the Loss Landscape of Neural Nets*): every filter :math:`d_{i,\cdot}`
  of a weight tensor (a slice along its first axis: a convolution's output channel, a
  linear layer's row) is rescaled to the norm of the matching filter of the weights,
  :math:`d_{i,\cdot} \leftarrow d_{i,\cdot}\, \lVert \theta_{i,\cdot} \rVert / \lVert d_{i,\cdot} \rVert`,
  and every one-dimensional tensor (biases, BatchNorm scales and shifts) is zero. A
  coordinate of 1 is then a move as large as the weights themselves, filter by filter.
- :func:`pca_directions`: the principal components of a training trajectory around
  its last point, with the explained variance and the trajectory's coordinates.
- :func:`eigen_plane`: unit Hessian eigenvectors (PyHessian's convention, which Xie et al.
  2024 follow) on one common length; :func:`lsutils.landscape.eigen_length` chooses it so
  that the Hessian plane stays in the loss range of the random plane (as Geniesse et al.
  2024 choose their range to keep the landscape meaningful).
- :func:`scaled_like`: rescales any direction to the norm of another.

Example:
    >>> import torch
    >>> params = {"conv.weight": torch.randn(64, 32, 3, 3), "conv.bias": torch.randn(64)}
    >>> d1, d2 = random_direction(params, seed=1), random_direction(params, seed=2)
    >>> bool(torch.allclose(d1["conv.weight"][0].norm(), params["conv.weight"][0].norm()))
    True
    >>> float(d1["conv.bias"].abs().max()), abs(cosine(d1, d2)) < 0.1  # nearly orthogonal
    (0.0, True)
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .objectives import Params

__all__ = ["random_direction", "filter_normalize", "pca_directions", "cosine", "norm",
           "scaled_like", "eigen_scale", "eigen_plane", "flatten", "unflatten"]


def flatten(d: Mapping[str, Tensor], names: Sequence[str] | None = None) -> Tensor:
    """Concatenate a parameter dict (in ``names`` order) into one vector."""
    names = list(d) if names is None else names
    return torch.cat([d[k].reshape(-1) for k in names])


def unflatten(v: Tensor, like: Mapping[str, Tensor]) -> Params:
    """Split a vector into tensors shaped like ``like`` (its key order)."""
    out, i = {}, 0
    for k, t in like.items():
        out[k] = v[i:i + t.numel()].view_as(t)
        i += t.numel()
    return out


def norm(d: Mapping[str, Tensor]) -> float:
    """Euclidean norm of a direction over all its tensors."""
    return math.sqrt(sum(float((t.double() ** 2).sum()) for t in d.values()))


def cosine(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    """Cosine of the angle between two directions (over their common keys)."""
    keys = [k for k in a if k in b]
    dot = sum(float((a[k].double() * b[k].double()).sum()) for k in keys)
    return dot / (norm({k: a[k] for k in keys}) * norm({k: b[k] for k in keys}) + 1e-300)


def filter_normalize(direction: Mapping[str, Tensor], params: Mapping[str, Tensor]) -> Params:
    """Li et al.'s filter normalization of ``direction`` against ``params`` (biases/BN zeroed)."""
    out = {}
    for k, p in params.items():
        d = direction[k]
        if p.dim() <= 1:
            out[k] = torch.zeros_like(p)
            continue
        p_norm = p.reshape(p.shape[0], -1).norm(dim=1)
        d_norm = d.reshape(d.shape[0], -1).norm(dim=1)
        scale = p_norm / (d_norm + 1e-10)
        out[k] = d * scale.view(-1, *[1] * (d.dim() - 1))
    return out


def random_direction(params: Mapping[str, Tensor], seed: int) -> Params:
    """A seeded Gaussian direction with filter normalization (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)
    raw = {k: torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype).to(p.device)
           for k, p in params.items()}
    return filter_normalize(raw, params)


def scaled_like(direction: Mapping[str, Tensor], reference: Mapping[str, Tensor]) -> Params:
    """``direction`` rescaled to the norm of ``reference`` (e.g. a filter-normalized direction)."""
    s = norm(reference) / (norm(direction) + 1e-300)
    return {k: t * s for k, t in direction.items()}


def eigen_scale(top_eigenvalue: float, rise: float, span: float = 1.0) -> float:
    r"""The length :math:`c` at which the *quadratic model* along a unit eigenvector rises by
    ``rise`` at the grid's edge: :math:`\tfrac12 \lambda_1 (c\,\text{span})^2 = \text{rise}`,
    :math:`c = \sqrt{2\,\text{rise} / \lambda_1} / \text{span}` (the start of
    :func:`lsutils.landscape.eigen_length`, which measures the loss itself).

    Example:
        >>> eigen_scale(top_eigenvalue=50.0, rise=4.0, span=1.0)
        0.4
    """
    if not (math.isfinite(top_eigenvalue) and top_eigenvalue > 0):
        raise ValueError(f"top_eigenvalue = {top_eigenvalue}; allowed: a finite number > 0 (a minimum's "
                         "top Hessian eigenvalue)")
    if not (math.isfinite(rise) and rise > 0):
        raise ValueError(f"rise = {rise}; allowed: a finite number > 0 (the random plane's loss rise)")
    if not span > 0:
        raise ValueError(f"span = {span}; allowed: a number > 0")
    return math.sqrt(2.0 * rise / top_eigenvalue) / span


def eigen_plane(vectors: Sequence[Mapping[str, Tensor]], length: float) -> list[Params]:
    """Hessian eigenvectors as grid directions: each made unit-norm (PyHessian's convention),
    then multiplied by ``length``, so one coordinate unit is the same Euclidean distance
    ``length`` along every axis.

    Example:
        >>> import torch
        >>> eigen_plane([{"w": torch.tensor([3.0, 4.0])}], length=2.0)[0]["w"]
        tensor([1.2000, 1.6000])
    """
    if not (math.isfinite(length) and length > 0):
        raise ValueError(f"length = {length}; allowed: a finite number > 0")
    return [{k: t * (length / norm(v)) for k, t in v.items()} for v in vectors]


def pca_directions(trajectory: Sequence[Mapping[str, Tensor]], k: int = 2,
                   names: Sequence[str] | None = None) -> tuple[list[Params], np.ndarray, np.ndarray]:
    """Principal directions of a trajectory around its last point (Li et al. 2018, sec. 7).

    Args:
        trajectory: parameter dicts (e.g. one per epoch), the final point last.
        k: number of components.
        names: which keys to use (default: all keys of the last point).

    Returns:
        ``directions`` (k unit-norm parameter dicts), ``explained`` (the fraction of the
        variance each explains) and ``coords`` ``[T, k]`` (each point's projection).
    """
    if len(trajectory) < 2:
        raise ValueError(f"trajectory has {len(trajectory)} points; allowed: at least 2")
    last = trajectory[-1]
    names = list(last) if names is None else list(names)
    like = {n: last[n] for n in names}
    M = torch.stack([flatten(p, names).double() - flatten(last, names).double() for p in trajectory])
    if k < 1 or k > min(M.shape):
        raise ValueError(f"k = {k}; allowed: 1..{min(M.shape)}")
    _, S, Vh = torch.linalg.svd(M, full_matrices=False)
    var = S ** 2
    explained = (var[:k] / var.sum()).numpy()
    dirs = [unflatten(Vh[i].to(last[names[0]].dtype), like) for i in range(k)]
    coords = (M @ Vh[:k].T).numpy()
    return dirs, explained, coords
