r"""Paths between two solutions: the straight line, trained curves, and Fort & Jastrzebski's connector.

Are two independently trained networks :math:`\theta_A, \theta_B` separated by a barrier,
or joined by a low-loss path? Along a path :math:`\phi(t)`, :math:`\phi(0) = \theta_A`,
:math:`\phi(1) = \theta_B`, the **barrier** of a quantity :math:`E` (loss, or error) is its
largest rise above the straight interpolation of its end values,

.. math:: B = \max_{t \in [0, 1]} \; E(\phi(t)) - \big((1 - t) E(0) + t E(1)\big) \;\ge 0 .

Three kinds of path, all points of one :class:`Curve`:

- the **straight line** :math:`\phi(t) = (1 - t)\theta_A + t\theta_B`;
- a trained **curve** (Garipov et al. 2018): a quadratic Bezier
  :math:`\phi(t) = (1-t)^2\theta_A + 2t(1-t)\theta_1 + t^2\theta_B` (``bends=3``: one free
  control point :math:`\theta_1`; more bends give higher degrees) or a polygonal chain
  through its bends at evenly spaced :math:`t`, started on the chord and trained by
  minimizing :math:`\mathbb{E}_{t \sim U(0,1)} L(\phi(t))` with one :math:`t` per minibatch;
- **Fort & Jastrzebski's two-point connector** (2019): start at the highest point of the
  chord and descend with the gradient projected orthogonally to the chord, which keeps the
  point's position along the chord; the path is the two segments through it.

Only the parameters move along a path. A network with BatchNorm has no running statistics
at :math:`\phi(t)`: they are **recomputed at every evaluated** :math:`t` on training data
(``bn="recompute"``, the default; ``"fixed"`` keeps the first network's and is wrong, shown
in the chapter only to say why).

**Yang et al.'s mode connectivity** (2021) reads the training error :math:`E` (%) along the
trained curve: with :math:`\bar E = (E(0) + E(1))/2` and
:math:`t^* = \arg\max_t |E(t) - \bar E|`, :math:`\mathrm{mc} = \bar E - E(t^*)`; negative: a
barrier; about zero: well connected; positive: the curve dips below its ends.

Example:
    >>> import torch
    >>> from lsutils.objectives import FunctionObjective
    >>> ring = FunctionObjective(lambda t: (t.norm() - 1) ** 2, torch.tensor([1.0, 0.0]), key="ring")
    >>> a, b = {"theta": torch.tensor([1.0, 0.0])}, {"theta": torch.tensor([-1.0, 0.0])}
    >>> line = evaluate_path(ring, Curve.line(a, b), points=5)
    >>> round(line.barrier("loss"), 6)  # the chord crosses the centre, where the loss is 1
    1.0
    >>> mode_connectivity([10.0, 30.0, 12.0])  # a barrier: the error rises 19 points above its ends
    -19.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from . import artifacts
from .directions import flatten
from .objectives import Objective, Params
from .repro import progress_bar
from .settings import check, same_as, setting

__all__ = ["Curve", "CurveConfig", "ConnectorConfig", "PathProfile", "barrier", "mode_connectivity",
           "evaluate_path", "evaluate_points", "fit_curve", "two_point_connector", "optimize", "CURVES"]

CURVES = ("bezier", "polychain")
BN_MODES = ("recompute", "fixed")


def _combine(nodes: Sequence[Mapping[str, Tensor]], weights: Sequence[float | Tensor]) -> Params:
    return {k: sum(w * n[k] for w, n in zip(weights, nodes)) for k in nodes[0]}


@dataclass
class Curve:
    """A path between two parameter points: its ``kind`` and its nodes (the two ends and the
    free bends between them).

    Attributes:
        kind: ``bezier`` (Bernstein weights of degree ``len(nodes) - 1``) or ``polychain``
            (linear between nodes placed at evenly spaced ``t``).
        ends: :math:`\\theta_A, \\theta_B` (fixed).
        controls: the free bends, in order.
    """

    kind: str
    ends: tuple[Params, Params]
    controls: list[Params] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in CURVES:
            raise ValueError(f"kind = {self.kind!r}; allowed: {', '.join(CURVES)}")

    @classmethod
    def line(cls, a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> "Curve":
        """The straight line from ``a`` to ``b``."""
        return cls("polychain", (dict(a), dict(b)))

    @classmethod
    def on_chord(cls, kind: str, a: Mapping[str, Tensor], b: Mapping[str, Tensor], bends: int) -> "Curve":
        """A curve with ``bends`` nodes (ends included) that traces the chord exactly: every
        control at :math:`\\theta_A + \\frac{j}{n}(\\theta_B - \\theta_A)` (Bernstein polynomials
        reproduce linear functions, so a Bezier curve so placed is the line, at the same speed)."""
        n = bends - 1
        controls = [{k: a[k] + j / n * (b[k] - a[k]) for k in a} for j in range(1, n)]
        return cls(kind, (dict(a), dict(b)), controls)

    @property
    def nodes(self) -> list[Params]:
        return [self.ends[0], *self.controls, self.ends[1]]

    def weights(self, t: float | Tensor) -> list[float | Tensor]:
        """The weight of every node at ``t`` (they sum to one)."""
        n = len(self.controls) + 1
        if self.kind == "bezier":
            return [math.comb(n, j) * t ** j * (1 - t) ** (n - j) for j in range(n + 1)]
        s = t * n  # polychain: node j sits at t = j / n
        j = min(int(s), n - 1)
        frac = s - j
        return [(1 - frac) if i == j else frac if i == j + 1 else 0.0 for i in range(n + 1)]

    def at(self, t: float | Tensor) -> Params:
        """:math:`\\phi(t)`, differentiable in the controls."""
        return _combine(self.nodes, self.weights(t))

    def detach(self) -> "Curve":
        return Curve(self.kind, self.ends, [{k: v.detach().clone() for k, v in c.items()} for c in self.controls])

    def distance_from_chord(self) -> float:
        """The largest distance of a control from the chord's line, relative to the chord's length."""
        a, b = flatten(self.ends[0]), flatten(self.ends[1])
        u = b - a
        out = 0.0
        for c in self.controls:
            d = flatten(c) - a
            out = max(out, float((d - (d @ u) / (u @ u) * u).norm() / u.norm()))
        return out


def barrier(values: Sequence[float], t: Sequence[float] | None = None) -> float:
    """:math:`\\max_t E(t) - ((1 - t)E(0) + tE(1))` over evenly spaced (or given) ``t`` from 0 to 1."""
    v = np.asarray(values, dtype=float)
    t = np.linspace(0.0, 1.0, len(v)) if t is None else np.asarray(t, dtype=float)
    if len(v) < 2 or len(t) != len(v):
        raise ValueError(f"values has {len(v)} entries and t {len(t)}; allowed: the same number, at least 2")
    return float(np.max(v - ((1 - t) * v[0] + t * v[-1])))


def mode_connectivity(errors: Sequence[float]) -> float:
    """Yang et al.'s :math:`\\mathrm{mc} = \\bar E - E(t^*)`, :math:`t^* = \\arg\\max_t |E(t) - \\bar E|`,
    over the errors along a curve (ends included). Of points equally far from :math:`\\bar E`, the
    highest is taken (a barrier and a dip of the same size give the barrier's, negative, mc).

    Example:
        >>> mode_connectivity([10.0, 8.0, 14.0, 12.0]), mode_connectivity([10.0, 8.0, 14.0, 10.0])
        (-3.0, -4.0)
    """
    e = np.asarray(errors, dtype=float)
    if len(e) < 2:
        raise ValueError(f"errors has {len(e)} entries; allowed: at least 2 (both ends)")
    mid = (e[0] + e[-1]) / 2
    dev = np.abs(e - mid)
    ties = np.flatnonzero(dev >= dev.max() - 1e-12 * max(1.0, dev.max()))
    return float(mid - e[ties].max())


@dataclass
class PathProfile:
    """Loss and metrics along a path at evenly spaced ``t`` (numpy arrays)."""

    t: np.ndarray
    values: dict[str, np.ndarray]

    @property
    def error(self) -> np.ndarray:
        """Training error in percent (classifiers) or relative L2 error in percent (PINNs)."""
        if "accuracy" in self.values:
            return 100.0 * (1.0 - self.values["accuracy"])
        if "rel_l2" in self.values:
            return 100.0 * self.values["rel_l2"]
        raise KeyError(f"no error metric; the path has {', '.join(self.values)}")

    def barrier(self, key: str = "loss") -> float:
        """The barrier of ``loss`` or ``error`` along the path."""
        return barrier(self.error if key == "error" else self.values[key], self.t)

    @property
    def mc(self) -> float:
        """Yang et al.'s mode connectivity of the error along the path."""
        return mode_connectivity(self.error)

    def as_dict(self) -> dict[str, Any]:
        return {"t": self.t.tolist(), **{k: v.tolist() for k, v in self.values.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PathProfile":
        return cls(np.asarray(d["t"]), {k: np.asarray(v) for k, v in d.items() if k != "t"})


def evaluate_points(objective: Objective, points: Sequence[Mapping[str, Tensor]], *, bn: str = "recompute",
                    bn_samples: int = 0, progress: bool = False, desc: str = "points") -> dict[str, np.ndarray]:
    """Loss and metrics at each of ``points``: with BatchNorm and ``bn="recompute"`` one at a time,
    each with its own statistics (:meth:`~lsutils.objectives.Objective.fit_buffers` on the first
    ``bn_samples``); otherwise all at once through the batched (``vmap``) evaluation."""
    if bn not in BN_MODES:
        raise ValueError(f"bn = {bn!r}; allowed: {', '.join(BN_MODES)}")
    points = [{k: v.detach() for k, v in p.items()} for p in points]
    with torch.no_grad():
        if objective.has_batchnorm and bn == "recompute":
            rows = [objective.with_buffers(objective.fit_buffers(p, bn_samples)).evaluate(p)
                    for p in progress_bar(points, enabled=progress, desc=desc, leave=False)]
            out = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
        else:
            out = objective.batched_evaluate({k: torch.stack([p[k] for p in points]) for k in points[0]})
    return {k: v.double().cpu().numpy() for k, v in out.items()}


def evaluate_path(objective: Objective, curve: Curve, points: int = 21, **kwargs: Any) -> PathProfile:
    """:func:`evaluate_points` at ``points`` evenly spaced ``t`` along ``curve``."""
    if points < 2:
        raise ValueError(f"points = {points}; allowed: at least 2 (both ends)")
    t = np.linspace(0.0, 1.0, points)
    with torch.no_grad():
        values = evaluate_points(objective, [curve.at(float(s)) for s in t], **kwargs)
    return PathProfile(t, values)


@dataclass(frozen=True)
class CurveConfig:
    """How a curve between two solutions is trained (Garipov et al. 2018) and evaluated."""

    kind: str = setting("bezier", choices=CURVES, doc="curve family")
    bends: int = setting(3, lo=3, doc="nodes of the curve, both ends included (3: one free bend)")
    steps: int = setting(1000, lo=0, doc="optimization steps, each at one t ~ U(0, 1) and one minibatch")
    optimizer: str = setting("sgd", choices=("sgd", "adam"), doc="optimizer of the free bends")
    lr: float = setting(0.01, lo=0.0, lo_open=True, doc="peak learning rate (cosine schedule)")
    momentum: float = setting(0.9, lo=0.0, hi=0.999, doc="SGD momentum")
    points: int = setting(21, lo=2, doc="evenly spaced t at which paths are evaluated")
    bn: str = setting("recompute", choices=BN_MODES, doc="BatchNorm statistics at each evaluated t")
    bn_samples: int = setting(0, lo=0, doc="inputs for recomputed statistics (0: all)")
    seed: int = setting(0, lo=0, doc="draws of t and of minibatches")

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True)
class ConnectorConfig:
    """Fort & Jastrzebski's two-point connector: descent orthogonal to the chord."""

    steps: int = setting(500, lo=0, doc="descent steps from the chord's highest point")
    optimizer: str = same_as(CurveConfig, "optimizer")
    lr: float = same_as(CurveConfig, "lr")
    momentum: float = same_as(CurveConfig, "momentum")
    points: int = setting(21, lo=3, doc="evenly spaced t on the line (to find its top) and on the path")
    bn: str = same_as(CurveConfig, "bn")
    bn_samples: int = same_as(CurveConfig, "bn_samples")
    seed: int = same_as(CurveConfig, "seed")

    def __post_init__(self) -> None:
        check(self)


def optimize(free: list[Params], step_loss: Callable[[list[Params], torch.Generator], Tensor], config: Any, *,
             path: Path | None = None, key: Mapping[str, Any] | None = None, profile: str | None = None,
             project: Callable[[list[Params]], None] | None = None, progress: bool = True,
             desc: str = "fit", save_every: int = 100) -> tuple[list[Params], list[float]]:
    """Minimize ``step_loss(live, generator)`` over the tensors of ``free`` for ``config.steps`` steps
    (``live``: the tensors being trained, in the structure of ``free``).

    ``config`` gives ``steps``, ``optimizer``, ``lr`` (a cosine schedule to zero), ``momentum``
    and ``seed`` (one generator draws everything random). ``project`` edits the gradients in
    place before each step. With ``path``, the state is saved every ``save_every`` steps and at
    the end under ``key``: a rerun with the same key loads the result, an interrupted one
    resumes at the last save and ends as an uninterrupted one would.

    Returns:
        The optimized tensors (detached) and the loss of every step.
    """
    params = [{k: v.detach().clone().requires_grad_(True) for k, v in p.items()} for p in free]
    tensors = [v for p in params for v in p.values()]
    if config.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(tensors, lr=config.lr, momentum=config.momentum)
    else:
        opt = torch.optim.Adam(tensors, lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    history: list[float] = []
    start = 0
    ident = {**(key or {}), "config": {k: getattr(config, k) for k in config.__dataclass_fields__}}
    if path is not None and artifacts.matches(path, ident):
        state = artifacts.load_torch(path)
        with torch.no_grad():
            for p, saved in zip(params, state["free"]):
                for k in p:
                    p[k].copy_(saved[k])
        history, start = list(state["history"]), state["step"]
        if start >= config.steps:
            return [{k: v.detach() for k, v in p.items()} for p in params], history
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])

    def save(step: int) -> None:
        if path is not None:
            artifacts.save_torch(path, {"free": [{k: v.detach().cpu() for k, v in p.items()} for p in params],
                                        "history": history, "step": step, "optimizer": opt.state_dict(),
                                        "generator": gen.get_state()}, params=ident, profile=profile,
                                 seed=config.seed)

    bar = progress_bar(range(start, config.steps), enabled=progress, desc=desc, leave=False, initial=start,
                       total=config.steps)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = config.lr * 0.5 * (1.0 + math.cos(math.pi * step / config.steps))
        loss = step_loss(params, gen)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: the loss is {float(loss)} at step {step + 1}; "
                                     f"the learning rate ({config.lr:g}) is likely too large")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if project is not None:
            project(params)
        opt.step()
        history.append(float(loss.detach()))
        if (step + 1) % save_every == 0 and step + 1 < config.steps:
            save(step + 1)
    bar.close()
    save(config.steps)
    return [{k: v.detach() for k, v in p.items()} for p in params], history


def _key(objective: Objective, nodes: Sequence[Mapping[str, Tensor]], what: str) -> dict[str, Any]:
    return {"what": what, "objective": objective.data_key(), "nodes": [artifacts.digest(dict(n)) for n in nodes]}


def fit_curve(objective: Objective, a: Mapping[str, Tensor], b: Mapping[str, Tensor], config: CurveConfig, *,
              path: Path | None = None, profile: str | None = None, progress: bool = True) -> tuple[Curve, list[float]]:
    """Train a curve from ``a`` to ``b`` (Garipov et al. 2018): its free bends start on the chord
    and minimize :math:`L(\\phi(t))` at one :math:`t \\sim U(0, 1)` per step, the loss being the
    objective's :meth:`~lsutils.objectives.Objective.train_loss` (a minibatch). Returns the curve
    and the loss of every step; ``path`` makes it resumable and cached."""
    start = Curve.on_chord(config.kind, a, b, config.bends)

    def step_loss(controls: list[Params], gen: torch.Generator) -> Tensor:
        t = float(torch.rand((), generator=gen))
        return objective.train_loss(_combine([start.ends[0], *controls, start.ends[1]], start.weights(t)), gen)

    controls, history = optimize(start.controls, step_loss, config, path=path,
                                 key=_key(objective, [a, b], f"{config.kind} curve"),
                                 profile=profile, progress=progress, desc=f"{config.kind} curve")
    return Curve(config.kind, start.ends, controls), history


def two_point_connector(objective: Objective, a: Mapping[str, Tensor], b: Mapping[str, Tensor],
                        config: ConnectorConfig, *, line: PathProfile | None = None, path: Path | None = None,
                        profile: str | None = None, progress: bool = True) -> tuple[Curve, list[float]]:
    """Fort & Jastrzebski's connector: from the highest point of the chord (on ``line``, the
    chord's profile, evaluated when not given), descend on the objective's training loss with
    every gradient projected orthogonally to the chord,
    :math:`g \\leftarrow g - (g \\cdot u)\\,u` with :math:`u = (\\theta_B - \\theta_A)/\\|\\theta_B - \\theta_A\\|`,
    so the point keeps its place along the chord. Returns the two-segment path through the point
    found (its bend at ``t = 1/2``) and the loss of every step."""
    if line is None:
        line = evaluate_path(objective, Curve.line(a, b), config.points, bn=config.bn, bn_samples=config.bn_samples,
                             progress=progress, desc="line")
    inner = line.values["loss"][1:-1]
    s = float(line.t[1 + int(np.argmax(inner))])  # the chord's highest interior point
    start = {k: a[k] + s * (b[k] - a[k]) for k in a}
    names = list(a)
    u = flatten(b, names) - flatten(a, names)
    norm = u.norm()
    if float(norm) == 0.0:
        raise ValueError("a and b are the same point; allowed: two different solutions")
    u = u / norm

    def project(live: list[Params]) -> None:
        g = torch.cat([live[0][k].grad.reshape(-1) for k in names])
        g -= (g @ u) * u
        offset = 0
        for k in names:
            n = live[0][k].numel()
            live[0][k].grad.copy_(g[offset:offset + n].view_as(live[0][k]))
            offset += n

    def step_loss(live: list[Params], gen: torch.Generator) -> Tensor:
        return objective.train_loss(live[0], gen)

    key = {**_key(objective, [a, b], "two-point connector"), "start": s}
    (bend,), history = optimize([start], step_loss, config, path=path, key=key, project=project, profile=profile,
                                progress=progress, desc="connector")
    return Curve("polychain", (dict(a), dict(b)), [bend]), history
