r"""Loss landscapes on grids: batched, resumable evaluation, storage and VTK export.

A landscape is the loss restricted to a low-dimensional slice through the weights,

.. math:: f(a_1, \dots, a_n) = L(\theta + a_1 d_1 + \dots + a_n d_n),

sampled on a grid of the coordinates (1-D curves, 2-D planes, 3-D and 4-D blocks).
:func:`evaluate_grid` evaluates many grid points per call through the objective's
batched form (``torch.func.vmap`` over stacked parameters, ``chunk_size`` points at a
time, the data read once per chunk and kept on the device), records the metric beside
the loss, keeps non-finite values as NaN and counts them, and checkpoints finished
points so an interrupted grid resumes where it stopped.

Example:
    >>> import torch
    >>> from lsutils.objectives import QuadraticObjective
    >>> A = torch.diag(torch.tensor([2.0, 8.0], dtype=torch.float64))
    >>> obj = QuadraticObjective(A, theta=torch.zeros(2, dtype=torch.float64))
    >>> e1, e2 = ({"theta": torch.tensor(v, dtype=torch.float64)} for v in ([1.0, 0.0], [0.0, 1.0]))
    >>> land = evaluate_grid(obj, [e1, e2], grid_axes(resolution=5, span=1.0, dims=2), progress=False)
    >>> land.loss.shape, land.at_origin(), float(land.loss.max())  # L = (2 a^2 + 8 b^2) / 2
    ((5, 5), 0.0, 5.0)
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from . import artifacts
from .objectives import Objective, Params
from .repro import progress_bar
from .sweep import executor_kind, map_unordered, open_executor

__all__ = ["Landscape", "grid_axes", "evaluate_grid", "eigen_length", "interpolate", "load_landscape", "to_vti"]


@dataclass
class Landscape:
    """Values of the loss (and a metric) on a grid of slice coordinates.

    Attributes:
        axes: one coordinate array per direction.
        values: ``{"loss": array, metric: array}``, each shaped ``[len(a) for a in axes]``.
        directions: a description of each direction (how it was made).
        n_nonfinite: grid points whose loss is NaN or infinite (kept as NaN).
        meta: anything else worth keeping (model, units, BatchNorm mode, ...).
    """

    axes: list[np.ndarray]
    values: dict[str, np.ndarray]
    directions: list[str]
    n_nonfinite: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.axes)

    @property
    def loss(self) -> np.ndarray:
        return self.values["loss"]

    def at_origin(self, key: str = "loss") -> float:
        """The value at the grid point nearest to the origin."""
        idx = tuple(int(np.argmin(np.abs(a))) for a in self.axes)
        return float(self.values[key][idx])


def grid_axes(resolution: int | Sequence[int], span: float | Sequence[float], dims: int) -> list[np.ndarray]:
    """Symmetric axes ``linspace(-span, span, resolution)`` per dimension (odd resolutions
    contain the origin)."""
    if dims < 1 or dims > 4:
        raise ValueError(f"dims = {dims}; allowed: 1, 2, 3 or 4")
    res = [resolution] * dims if isinstance(resolution, int) else list(resolution)
    spans = [span] * dims if isinstance(span, (int, float)) else list(span)
    if len(res) != dims or len(spans) != dims or min(res) < 2 or min(spans) <= 0:
        raise ValueError(f"resolution = {resolution}, span = {span}; allowed: {dims} values, "
                         "resolutions >= 2 and spans > 0")
    return [np.linspace(-s, s, r) for r, s in zip(res, spans)]


def _points(axes: Sequence[np.ndarray]) -> np.ndarray:
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=1)


def _check_finite(axes: Sequence[np.ndarray], origin: Mapping[str, Tensor],
                  directions: Sequence[Mapping[str, Tensor]]) -> None:
    """Refuse a grid that could only give NaN: non-finite axes, origin or directions."""
    for i, a in enumerate(axes):
        if not np.isfinite(np.asarray(a, dtype=float)).all():
            raise ValueError(f"axes[{i}] holds NaN or infinite coordinates; allowed: finite numbers")
    for what, d in [("origin", origin)] + [(f"directions[{i}]", d) for i, d in enumerate(directions)]:
        bad = [k for k, t in d.items() if not bool(torch.isfinite(t).all())]
        if bad:
            raise ValueError(f"{what} has NaN or infinite entries in {bad[0]!r}; allowed: finite tensors "
                             "(a diverged model or direction?)")


def _stack(origin: Mapping[str, Tensor], directions: Sequence[Mapping[str, Tensor]], coeffs: Tensor) -> Params:
    """The points ``origin + sum_j coeffs[:, j] d_j`` stacked on a leading axis, ``[len(coeffs), ...]``."""
    return {k: o.unsqueeze(0) + sum(coeffs[:, j].view(-1, *[1] * o.dim()) * d[k].unsqueeze(0)
                                    for j, d in enumerate(directions)) for k, o in origin.items()}


def _partial_path(path: Path) -> Path:
    return path.with_name(path.stem + ".partial.npz")


def evaluate_grid(objective: Objective, directions: Sequence[Mapping[str, Tensor]],
                  axes: Sequence[np.ndarray], *, origin: Mapping[str, Tensor] | None = None,
                  chunk_size: int | None = None, path: Path | None = None,
                  describe: Sequence[str] | None = None, meta: Mapping[str, Any] | None = None,
                  profile: str | None = None, progress: bool = True, checkpoint_seconds: float = 30.0,
                  max_points: int | None = None, metrics: bool = True, executor: Any = None,
                  n_blocks: int = 8) -> Landscape:
    """Evaluate the objective (loss and metric) on the grid ``origin + sum_j a_j d_j``.

    Args:
        objective: the loss over parameters.
        directions: one parameter dict per axis.
        axes: the coordinates along each direction.
        origin: the centre (default: ``objective.params``).
        chunk_size: grid points per batched call (default: the objective's).
        path: where the finished landscape is saved (``.npz`` + sidecar) and loaded from
            when it was made with the same settings; finished points are checkpointed
            beside it (``.partial.npz``) and reused on a rerun.
        describe: a description of each direction, stored with the values.
        meta: extra metadata stored with the values (and required to match on resume).
        max_points: stop after this many new points (as an interruption would).
        metrics: also record the objective's metric (accuracy, relative error); for a PINN
            this evaluates the network on the whole 256x100 grid at every point.
        executor: ``None`` or ``serial`` (this process), or an executor of :mod:`lsutils.sweep`
            (``local:N``, a Dask scheduler, an executor object): the grid's chunks are then split
            into ``n_blocks`` contiguous blocks, one task each with one torch thread, and assembled
            here into the same file (the same chunks as in one process: the same values at the
            same thread count). Worth it only where one grid is at the forward pass's limit and
            more processes than cores per grid help, e.g. many GPUs or cluster nodes.
        n_blocks: the number of blocks (tasks) of a grid on an executor.

    Returns:
        The :class:`Landscape` (complete unless stopped by ``max_points``).
    """
    if len(directions) != len(axes):
        raise ValueError(f"{len(directions)} directions but {len(axes)} axes; they must match")
    origin = objective.params if origin is None else origin
    names = list(origin)
    dev = objective.device
    o = {k: origin[k].detach().to(dev) for k in names}
    ds = [{k: d[k].detach().to(dev, o[k].dtype) for k in names} for d in directions]
    _check_finite(axes, o, ds)
    describe = list(describe or [f"direction {i}" for i in range(len(ds))])
    pts = _points(axes)
    shape = tuple(len(a) for a in axes)
    chunk = objective.chunk_size if chunk_size is None else chunk_size
    chunk = max(1, chunk or len(pts))
    # The cache and resume key: every input that changes a value (a changed one recomputes).
    key = {"origin": artifacts.digest(o), "directions": [artifacts.digest(d) for d in ds],
           "objective": objective.data_key(), "chunk_size": chunk}
    params = {"axes": [a.tolist() for a in axes], "directions": describe, "metrics": metrics, "key": key,
              **dict(meta or {})}
    if path is not None and artifacts.matches(path, params):
        return load_landscape(path)  # finished before, with exactly these inputs
    partial = _partial_path(path) if path is not None else None
    done, values = _resume(partial, params, len(pts))
    # Blocks are fixed on the global point index, so a resumed grid evaluates exactly the
    # blocks (and vmap reductions) an uninterrupted one does: identical results, bit for bit.
    blocks = [np.arange(s, min(s + chunk, len(pts))) for s in range(0, len(pts), chunk)]
    blocks = [b for b in blocks if not done[b].all()]
    if max_points is not None:
        blocks = blocks[:max(1, max_points // chunk)]

    def checkpoint() -> None:
        if partial is not None:
            artifacts.save_npz(partial, {"done": done, **{f"v_{k}": v for k, v in values.items()}},
                               params=params, profile=profile)

    coeffs = torch.as_tensor(pts, dtype=o[names[0]].dtype, device=dev)
    bar = progress_bar(total=sum(map(len, blocks)), desc=f"grid {'x'.join(map(str, shape))}",
                       enabled=progress, leave=False)
    last_save = time.perf_counter()
    for idx, out in _evaluated(objective, o, ds, coeffs, blocks, metrics, executor, n_blocks):
        for name, val in out.items():
            values.setdefault(name, np.full(len(pts), np.nan))[idx] = val
        done[idx] = True
        bar.update(len(idx))
        if time.perf_counter() - last_save > checkpoint_seconds:
            checkpoint()
            last_save = time.perf_counter()
    bar.close()
    land = _landscape(axes, values, done, describe, meta, shape)
    if not done.all():
        checkpoint()
    elif path is not None:
        _save(path, partial, land, params, profile)
    return land


def evaluate_block(objective: Objective, origin: Params, directions: Sequence[Params], coeffs: Tensor,
                   chunks: Sequence[np.ndarray], metrics: bool,
                   threads: int | None = None) -> list[dict[str, np.ndarray]]:
    """The values of consecutive chunks of grid points (``coeffs`` rows, by global index), one
    batched call per chunk: the unit of work of a grid, in this process or on a worker."""
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            return [{name: val.double().cpu().numpy() for name, val in objective.batched_evaluate(
                _stack(origin, directions, coeffs[torch.as_tensor(idx, device=coeffs.device)]), chunk_size=len(idx),
                metrics=metrics).items()} for idx in chunks]
    finally:
        torch.set_num_threads(old)


def _evaluated(objective: Objective, o: Params, ds: Sequence[Params], coeffs: Tensor, blocks: list[np.ndarray],
               metrics: bool, executor: Any, n_blocks: int) -> Any:
    """``(indices, values)`` of every chunk, evaluated here or in ``n_blocks`` tasks on ``executor``."""
    if executor is None or executor_kind(executor) == "serial":
        for idx in blocks:
            yield idx, evaluate_block(objective, o, ds, coeffs, [idx], metrics)[0]
        return
    if n_blocks < 1:
        raise ValueError(f"n_blocks = {n_blocks!r}; allowed: an integer >= 1")
    groups = [g for g in np.array_split(np.arange(len(blocks)), min(n_blocks, len(blocks))) if len(g)]
    jobs = [(f"grid-block-{i}", (objective, o, ds, coeffs, [blocks[j] for j in g], metrics, 1))
            for i, g in enumerate(groups)]
    by_name = {name: [blocks[j] for j in g] for (name, _), g in zip(jobs, groups)}
    with open_executor(executor) as pool:
        for name, out in map_unordered(pool, evaluate_block, jobs):
            if isinstance(out, BaseException):
                raise RuntimeError(f"{name} of the grid failed: {type(out).__name__}: {out}") from out
            yield from zip(by_name[name], out)


def _resume(partial: Path | None, params: dict[str, Any], n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Which of ``n`` points are done and their values: from a checkpoint made with exactly
    ``params``, else none."""
    if partial is not None and artifacts.matches(partial, params):
        saved = artifacts.load_npz(partial)
        return saved.pop("done").astype(bool), {k[2:]: v for k, v in saved.items() if k.startswith("v_")}
    return np.zeros(n, dtype=bool), {}


def _landscape(axes: Sequence[np.ndarray], values: dict[str, np.ndarray], done: np.ndarray, describe: list[str],
               meta: Mapping[str, Any] | None, shape: tuple[int, ...]) -> Landscape:
    """The grid's values shaped like the grid, non-finite ones as NaN and counted."""
    loss = values.get("loss", np.full(len(done), np.nan))
    return Landscape(axes=[np.asarray(a) for a in axes],
                     values={k: np.where(np.isfinite(v), v, np.nan).reshape(shape) for k, v in values.items()},
                     directions=describe, n_nonfinite=int((~np.isfinite(loss[done])).sum()),
                     meta=dict(meta or {}))


def _save(path: Path, partial: Path | None, land: Landscape, params: dict[str, Any], profile: str | None) -> None:
    """A finished grid, atomically, and its checkpoint removed."""
    arrays = {f"axis_{i}": a for i, a in enumerate(land.axes)}
    arrays.update({f"v_{k}": v for k, v in land.values.items()})
    artifacts.save_npz(path, arrays, params=params, profile=profile,
                       extra={"n_nonfinite": land.n_nonfinite, "shape": list(land.shape)})
    if partial is not None:
        artifacts.remove(partial)


def eigen_length(objective: Objective, vectors: Sequence[Mapping[str, Tensor]], rise: float, span: float = 1.0,
                 *, top_eigenvalue: float | None = None, origin: Mapping[str, Tensor] | None = None,
                 rtol: float = 0.05, max_evals: int = 40) -> float:
    r"""The length :math:`c` for unit eigenvectors :math:`u_1, \dots, u_d` at which the grid's
    edge has risen by ``rise``:

    .. math::

        \max_{k \in \{-1, 0, 1\}^d \setminus 0}
        L\big(\theta + c\,\text{span} \textstyle\sum_j k_j u_j\big) - L(\theta) = \text{rise},

    the largest loss over the grid's *compass points* (the ends of the axes and the corners:
    8 in 2-D, 26 in 3-D), where a landscape around a minimum takes its largest values. With
    ``rise`` the random plane's loss range, the Hessian grid covers the same band of loss values
    as the random plane (Geniesse et al. 2024 choose the range so that the landscape stays
    meaningful), instead of the astronomical losses a step as long as the weights reaches along
    the sharpest directions. The search starts from the quadratic model's length
    (:func:`~lsutils.directions.eigen_scale`), brackets the target by halving or doubling, and
    bisects in :math:`\log c` until the rise is within ``rtol`` of the target; each trial is one
    batched call over the compass points.

    Returns:
        The length :math:`c` (pass it to :func:`~lsutils.directions.eigen_plane`).
    """
    from .directions import eigen_scale, norm

    if not (np.isfinite(rise) and rise > 0):
        raise ValueError(f"rise = {rise}; allowed: a finite number > 0 (the random plane's loss range)")
    origin = objective.params if origin is None else origin
    dev = objective.device
    o = {k: origin[k].detach().to(dev) for k in origin}
    us = [{k: v[k].detach().to(dev, o[k].dtype) / norm(v) for k in o} for v in vectors]
    compass = torch.as_tensor(_points([np.array([-1.0, 0.0, 1.0])] * len(us)), dtype=o[next(iter(o))].dtype,
                              device=dev)
    compass = compass[compass.abs().sum(1) > 0] * span
    with torch.no_grad():
        base = float(objective.loss(o))

    def edge_rise(c: float) -> float:
        with torch.no_grad():
            vals = objective.batched(_stack(o, us, c * compass))
        return float(vals.max()) - base if bool(torch.isfinite(vals).all()) else math.inf

    c = eigen_scale(top_eigenvalue, rise, span) if top_eigenvalue and top_eigenvalue > 0 else 1.0 / span
    lo = hi = None
    for _ in range(max_evals):
        r = edge_rise(c)
        if abs(r - rise) <= rtol * rise:
            return c
        if r > rise:
            hi = c
        else:
            lo = c
        c = math.sqrt(lo * hi) if lo is not None and hi is not None else (c / 2 if lo is None else c * 2)
    if lo is None or hi is None:
        raise ValueError(f"no length along the eigenvectors reaches a loss rise of {rise:.4g} within "
                         f"{max_evals} trials (the loss may be flat or unbounded along them)")
    return c


def load_landscape(path: Path) -> Landscape:
    """A landscape saved by :func:`evaluate_grid` (clear error if missing)."""
    arrays = artifacts.load_npz(path)
    meta = artifacts.read_meta(path)
    axes = [arrays[f"axis_{i}"] for i in range(sum(k.startswith("axis_") for k in arrays))]
    params = dict(meta["params"])
    describe = params.pop("directions")
    for k in ("axes", "key"):
        params.pop(k, None)
    return Landscape(axes=axes, values={k[2:]: v for k, v in arrays.items() if k.startswith("v_")},
                     directions=describe, n_nonfinite=meta.get("n_nonfinite", 0), meta=params)


def interpolate(objective: Objective, start: Mapping[str, Tensor], end: Mapping[str, Tensor],
                alphas: np.ndarray, **kwargs: Any) -> Landscape:
    """The 1-D curve ``(1 - alpha) start + alpha end`` (``alpha = 0`` is ``start``)."""
    delta = {k: end[k].to(start[k].device) - start[k] for k in start}
    return evaluate_grid(objective, [delta], [np.asarray(alphas)], origin=start, **kwargs)


def to_vti(land: Landscape, path: Path, keys: Sequence[str] | None = None) -> Path:
    """Write a 1-, 2- or 3-D landscape as VTK image data (``.vti``, ASCII) for ParaView/TTK.

    The grid's first axis is VTK's x (fastest varying), then y, then z; spacing and
    origin come from the axes (uniform axes only).
    """
    if len(land.axes) > 3:
        raise ValueError(f"a {len(land.axes)}-D landscape does not fit VTK image data (at most 3-D)")
    axes = list(land.axes) + [np.zeros(1)] * (3 - len(land.axes))
    for a in land.axes:
        if len(a) > 2 and not np.allclose(np.diff(a), a[1] - a[0]):
            raise ValueError("to_vti needs uniformly spaced axes")
    spacing = [float(a[1] - a[0]) if len(a) > 1 else 1.0 for a in axes]
    extent = " ".join(f"0 {len(a) - 1}" for a in axes)
    keys = list(land.values) if keys is None else list(keys)
    arrays = []
    for k in keys:
        v = land.values[k].reshape([len(a) for a in axes])
        flat = np.transpose(v, (2, 1, 0)).reshape(-1)  # x fastest
        text = " ".join("nan" if not np.isfinite(x) else repr(float(x)) for x in flat)
        arrays.append(f'        <DataArray type="Float64" Name="{k}" format="ascii">{text}</DataArray>')
    xml = "\n".join([
        '<?xml version="1.0"?>',
        '<VTKFile type="ImageData" version="0.1" byte_order="LittleEndian">',
        f'  <ImageData WholeExtent="{extent}" Origin="{" ".join(str(float(a[0])) for a in axes)}" '
        f'Spacing="{" ".join(map(str, spacing))}">',
        f'    <Piece Extent="{extent}">',
        f'      <PointData Scalars="{keys[0]}">', *arrays, "      </PointData>",
        "    </Piece>", "  </ImageData>", "</VTKFile>", ""])
    path = Path(path)
    if path.is_file() and path.read_text() == xml:
        return path  # already there: a finished, read-only data folder stays usable
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.vti.tmp")
    tmp.write_text(xml)
    tmp.replace(path)
    return path
