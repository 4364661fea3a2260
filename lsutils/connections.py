"""Measured connections between trained networks, computed once and loaded after.

:func:`connect_or_load` measures everything the connectivity chapter reports about a pair of
solutions: the straight line (with BatchNorm statistics recomputed at every point, and, for a
network with BatchNorm, also with the first network's statistics kept, to show why that is
wrong), a trained curve (Garipov et al. 2018) with Yang et al.'s mode connectivity, and Fort &
Jastrzebski's two-point connector. :func:`simplex_or_load` does the same for a star complex
through a set of solutions (Benton et al. 2021): the loss on uniform samples of the structure
and on the 2-D cut through three solutions, before and after training.

Each record is one JSON artifact whose key holds the weights (digests), the data and every
setting; the training underneath is resumable (:func:`lsutils.connectivity.optimize`).

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from lsutils.objectives import FunctionObjective
    >>> ring = FunctionObjective(lambda t: (t.norm() - 1) ** 2, torch.tensor([0.0, 1.0]), key="ring")
    >>> a, b = {"theta": torch.tensor([0.0, 1.0])}, {"theta": torch.tensor([0.0, -1.0]) + 0.01}
    >>> c = connect_or_load(ring, a, b, CurveConfig(steps=100, lr=0.05), ConnectorConfig(steps=50, lr=0.05),
    ...                     folder=Path(tempfile.mkdtemp()), name="ring", progress=False)
    >>> c.line.barrier() > 0.9 and c.curve.barrier() < 0.1
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from torch import Tensor

from . import artifacts
from .connectivity import (ConnectorConfig, Curve, CurveConfig, PathProfile, evaluate_path, evaluate_points,
                           fit_curve, two_point_connector)
from .objectives import Objective
from .simplex import SimplexConfig, fit_simplex, structure_samples

__all__ = ["Connection", "SimplexRecord", "connect_or_load", "simplex_or_load", "CurveConfig", "ConnectorConfig",
           "SimplexConfig"]


def _thin(history: Sequence[float], most: int = 200) -> list[float]:
    """At most ``most`` running means of a per-step loss history (for a training-curve plot)."""
    h = np.asarray(history, dtype=float)
    if len(h) <= most:
        return h.tolist()
    return [float(c.mean()) for c in np.array_split(h, most)]


@dataclass
class Connection:
    """What one pair of solutions measured: profiles along the line, the trained curve and the
    connector's two segments (``fixed_line``: the line with the first network's BatchNorm
    statistics, ``None`` without BatchNorm), how far curve and connector left the chord
    (relative to its length), and their training losses."""

    line: PathProfile
    curve: PathProfile
    connector: PathProfile
    fixed_line: PathProfile | None
    curve_offset: float
    connector_offset: float
    curve_history: list[float]
    connector_history: list[float]

    def row(self) -> dict[str, float]:
        """Barriers (loss, error in %) of the three paths and the curve's mc."""
        return {"line loss barrier": self.line.barrier("loss"), "line error barrier": self.line.barrier("error"),
                "curve loss barrier": self.curve.barrier("loss"), "curve error barrier": self.curve.barrier("error"),
                "connector loss barrier": self.connector.barrier("loss"),
                "connector error barrier": self.connector.barrier("error"),
                "line mc": self.line.mc, "curve mc": self.curve.mc}

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("curve_offset", "connector_offset", "curve_history", "connector_history")}
        for k in ("line", "curve", "connector", "fixed_line"):
            p = getattr(self, k)
            out[k] = None if p is None else p.as_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Connection":
        paths = {k: None if d[k] is None else PathProfile.from_dict(d[k])
                 for k in ("line", "curve", "connector", "fixed_line")}
        return cls(**paths, **{k: d[k] for k in ("curve_offset", "connector_offset", "curve_history",
                                                    "connector_history")})


def connect_or_load(objective: Objective, a: Mapping[str, Tensor], b: Mapping[str, Tensor], curve: CurveConfig,
                    connector: ConnectorConfig, *, folder: Path, name: str, evaluate_on: Objective | None = None,
                    profile: str | None = None, progress: bool = True) -> Connection:
    """The :class:`Connection` of ``a`` and ``b``, loaded from ``folder/name.json`` when it was
    measured with the same weights, data and settings, else measured: curve and connector are
    trained on ``objective`` (its :meth:`~lsutils.objectives.Objective.train_loss`) and every
    path is evaluated on ``evaluate_on`` (default: the same objective)."""
    ev = objective if evaluate_on is None else evaluate_on
    path = folder / f"{name}.json"
    key = {"ends": [artifacts.digest(dict(a)), artifacts.digest(dict(b))], "train": objective.data_key(),
           "evaluate": ev.data_key(), "curve": asdict(curve), "connector": asdict(connector)}
    if artifacts.matches(path, key):
        return Connection.from_dict(artifacts.load_json(path))
    opts = {"bn": curve.bn, "bn_samples": curve.bn_samples, "progress": progress}
    line = evaluate_path(ev, Curve.line(a, b), curve.points, desc="line", **opts)
    fixed = evaluate_path(ev, Curve.line(a, b), curve.points, bn="fixed") if ev.has_batchnorm else None
    trained, curve_history = fit_curve(objective, a, b, curve, path=folder / f"{name}_curve.pt", profile=profile,
                                       progress=progress)
    curve_profile = evaluate_path(ev, trained, curve.points, desc="curve", **opts)
    same = (connector.points, connector.bn, connector.bn_samples) == (curve.points, curve.bn, curve.bn_samples)
    chord = line if same else evaluate_path(ev, Curve.line(a, b), connector.points, bn=connector.bn,
                                            bn_samples=connector.bn_samples, progress=progress, desc="line")
    bend, connector_history = two_point_connector(objective, a, b, connector, line=chord,
                                                  path=folder / f"{name}_connector.pt", profile=profile,
                                                  progress=progress)
    connector_profile = evaluate_path(ev, bend, connector.points, bn=connector.bn, bn_samples=connector.bn_samples,
                                      progress=progress, desc="connector")
    out = Connection(line, curve_profile, connector_profile, fixed, trained.distance_from_chord(),
                     bend.distance_from_chord(), _thin(curve_history), _thin(connector_history))
    artifacts.save_json(path, out.as_dict(), params=key, profile=profile, seed=curve.seed)
    return out


@dataclass
class SimplexRecord:
    """A star complex through several solutions, before and after training: metrics at uniform
    samples of the structure, and on the 2-D cut through three solutions (``cut_xy``: the
    lattice points' coordinates on the triangle whose corners are the solutions)."""

    before: dict[str, np.ndarray]
    after: dict[str, np.ndarray]
    cut_xy: np.ndarray | None
    cut_before: dict[str, np.ndarray] | None
    cut_after: dict[str, np.ndarray] | None
    history: list[float]

    def as_dict(self) -> dict[str, Any]:
        def lists(d: Any) -> Any:
            return None if d is None else {k: np.asarray(v).tolist() for k, v in d.items()}

        return {"before": lists(self.before), "after": lists(self.after), "cut_before": lists(self.cut_before),
                "cut_after": lists(self.cut_after), "history": self.history,
                "cut_xy": None if self.cut_xy is None else self.cut_xy.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SimplexRecord":
        def arrays(x: Any) -> Any:
            return None if x is None else {k: np.asarray(v) for k, v in x.items()}

        return cls(arrays(d["before"]), arrays(d["after"]), None if d["cut_xy"] is None else np.asarray(d["cut_xy"]),
                   arrays(d["cut_before"]), arrays(d["cut_after"]), list(d["history"]))


def simplex_or_load(objective: Objective, vertices: Sequence[Mapping[str, Tensor]], config: SimplexConfig, *,
                    folder: Path, name: str, evaluate_on: Objective | None = None, profile: str | None = None,
                    progress: bool = True) -> SimplexRecord:
    """The :class:`SimplexRecord` of a star complex through ``vertices`` (the cut when there are
    three), loaded from ``folder/name.json`` when measured with the same weights, data and
    settings, else trained on ``objective`` and evaluated on ``evaluate_on``."""
    ev = objective if evaluate_on is None else evaluate_on
    path = folder / f"{name}.json"
    key = {"vertices": [artifacts.digest(dict(v)) for v in vertices], "train": objective.data_key(),
           "evaluate": ev.data_key(), "config": asdict(config)}
    if artifacts.matches(path, key):
        return SimplexRecord.from_dict(artifacts.load_json(path))
    before, after, history = fit_simplex(objective, vertices, config, path=folder / f"{name}_complex.pt",
                                         profile=profile, progress=progress)
    record = SimplexRecord(structure_samples(ev, before, config, progress=progress),
                           structure_samples(ev, after, config, progress=progress), None, None, None,
                           _thin(history))
    if len(vertices) == 3:
        opts = {"bn": config.bn, "bn_samples": config.bn_samples, "progress": progress, "desc": "cut"}
        record.cut_xy, points = before.cut(config.cut_resolution)
        record.cut_before = evaluate_points(ev, points, **opts)
        record.cut_after = evaluate_points(ev, after.cut(config.cut_resolution)[1], **opts)
    artifacts.save_json(path, record.as_dict(), params=key, profile=profile, seed=config.seed)
    return record
