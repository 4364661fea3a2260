r"""Curvature reports of trained models: the Hessian metrics the papers compare.

One call, :func:`analyze`, measures at a model's trained weights what Xie et al. 2024
and Yang et al. 2021 set against performance and topology: the top eigenvalues
(Lanczos), the trace (Hutchinson, with its standard error) and the eigenvalue
spectral density (SLQ), and what Fort & Ganguli 2019 predict: about :math:`C`
outlier eigenvalues above the bulk for :math:`C` classes. :func:`analyze_or_load`
keeps the report, with the top eigenvectors the landscape chapter uses as
directions, as an artifact, and loads it when it was computed with the same settings.

Outliers are counted at the largest gap of the top eigenvalues on a log scale:
with :math:`\lambda_1 \ge \dots \ge \lambda_k > 0`, the count is the :math:`i`
maximising :math:`\lambda_i / \lambda_{i+1}` (Fort & Ganguli separate the
outliers from the bulk the same way, by eye, on a log plot). Beside it,
:func:`gap_ratio` reports :math:`\lambda_C / \lambda_{C+1}` against the typical
neighbouring ratio, which says directly whether there is a gap at the number of classes.

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from lsutils.objectives import QuadraticObjective
    >>> A = torch.diag(torch.tensor([5.0, 3.0, 1.0, 0.5], dtype=torch.float64))
    >>> cfg = CurvatureConfig(top_k=2, trace_probes=8, max_steps=10, slq_steps=4, save_vectors=1)
    >>> path = Path(tempfile.mkdtemp()) / "quadratic.pt"
    >>> report = analyze_or_load(path, QuadraticObjective(A), cfg)
    >>> [round(v, 6) for v in report.eigenvalues], report.loaded
    ([5.0, 3.0], False)
    >>> analyze_or_load(path, QuadraticObjective(A), cfg).loaded
    True
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import artifacts
from .hessian import METHODS, HessianOperator, hutchinson_trace, slq_density, top_eigenpairs
from .objectives import Objective, Params
from .settings import SettingError, check, setting

__all__ = ["CurvatureConfig", "CurvatureReport", "analyze", "analyze_or_load", "load_report", "count_outliers",
           "gap_ratio",
           "density_on_grid"]


@dataclass(frozen=True)
class CurvatureConfig:
    """What to measure and how precisely.

    Attributes:
        top_k: eigenvalues computed by Lanczos (at least 2C for the outlier count).
        tol: relative residual tolerance of the Ritz pairs.
        max_steps: cap on Lanczos steps (Hessian-vector products).
        trace_probes: Rademacher probes for the trace.
        slq_runs, slq_steps: stochastic Lanczos quadrature runs and steps per run.
        save_vectors: how many top eigenvectors to keep (directions for landscapes).
        method: Hessian-vector product, ``double_backward`` or ``forward_over_reverse``.
        seed: probe and start-vector seed.
    """

    top_k: int = setting(20, lo=1, doc="top eigenvalues by Lanczos")
    tol: float = setting(1e-3, lo=0.0, lo_open=True, doc="relative residual tolerance")
    max_steps: int = setting(150, lo=1, doc="cap on Lanczos steps")
    trace_probes: int = setting(50, lo=2, doc="Hutchinson probes")
    slq_runs: int = setting(2, lo=1, doc="SLQ runs")
    slq_steps: int = setting(60, lo=1, doc="Lanczos steps per SLQ run")
    save_vectors: int = setting(3, lo=0, doc="top eigenvectors kept for the landscapes")
    method: str = setting("double_backward", choices=METHODS, doc="Hessian-vector product")
    seed: int = setting(0, lo=0, doc="probe and start-vector seed")

    def __post_init__(self) -> None:
        check(self)
        if self.save_vectors > self.top_k:
            raise SettingError(f"save_vectors = {self.save_vectors}; allowed: 0..top_k ({self.top_k})")


@dataclass
class CurvatureReport:
    """The Hessian metrics of one model at its trained weights."""

    eigenvalues: list[float]
    trace: float
    trace_stderr: float
    slq_nodes: np.ndarray
    slq_weights: np.ndarray
    outliers: int
    num_params: int
    products: int
    seconds: float
    converged: bool
    vectors: list[Params] = field(default_factory=list, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)
    loaded: bool = field(default=False, compare=False)

    @property
    def top_eigenvalue(self) -> float:
        return self.eigenvalues[0]


def count_outliers(values: list[float] | np.ndarray) -> int:
    """Eigenvalues above the largest log-gap of the descending positive ``values``."""
    v = np.sort(np.asarray(values, dtype=float))[::-1]
    v = v[v > 0]
    if len(v) < 2:
        return len(v)
    ratios = v[:-1] / v[1:]
    return int(np.argmax(ratios)) + 1


def gap_ratio(values: list[float] | np.ndarray, c: int) -> tuple[float, float]:
    r"""Is there a gap after the ``c``-th eigenvalue? :math:`\lambda_c / \lambda_{c+1}` of the
    descending ``values``, and the median ratio :math:`\lambda_i / \lambda_{i+1}` of the other
    neighbouring pairs among them (what a ratio without a gap looks like). Fort & Ganguli 2019
    predict a gap at :math:`c = C`, the number of classes. NaN when fewer than ``c + 1``
    positive values are given.

    Example:
        >>> gap_ratio([40, 30, 20, 2, 1.5, 1.2], c=3)
        (10.0, 1.3333333333333333)
    """
    v = np.sort(np.asarray(values, dtype=float))[::-1]
    v = v[v > 0]
    if c < 1 or len(v) < c + 1:
        return float("nan"), float("nan")
    ratios = v[:-1] / v[1:]
    others = np.delete(ratios, c - 1)
    return float(ratios[c - 1]), float(np.median(others)) if len(others) else float("nan")


def analyze(objective: Objective, config: CurvatureConfig) -> CurvatureReport:
    """Top eigenpairs, trace and SLQ density of the objective's Hessian at its parameters."""
    start = time.perf_counter()
    op = HessianOperator(objective, method=config.method)
    k = min(config.top_k, op.dim)
    eig = top_eigenpairs(op, k=k, tol=config.tol, max_steps=max(config.max_steps, k), seed=config.seed)
    tr = hutchinson_trace(op, n_probes=config.trace_probes, seed=config.seed)
    esd = slq_density(op, n_runs=config.slq_runs, n_steps=config.slq_steps, seed=config.seed)
    return CurvatureReport(
        eigenvalues=eig.values, trace=tr.mean, trace_stderr=tr.stderr, slq_nodes=esd.nodes,
        slq_weights=esd.weights, outliers=count_outliers(eig.values), num_params=op.dim,
        products=op.num_products, seconds=time.perf_counter() - start, converged=eig.converged,
        vectors=[{n: t.detach().cpu() for n, t in v.items()} for v in eig.vectors[:config.save_vectors]])


def analyze_or_load(path: Path, objective: Objective, config: CurvatureConfig, *,
                    profile: str | None = None, extra: dict[str, Any] | None = None) -> CurvatureReport:
    """Load the report at ``path`` if it was made with ``config`` (and ``extra``) for the same
    weights and data, else compute and save it.

    Returns:
        The report; ``report.loaded`` says whether it was loaded.
    """
    # The key: the settings, the weights and everything else the objective's values depend on.
    params = {"config": dataclasses.asdict(config), "weights": artifacts.digest(objective.params),
              "objective": objective.data_key(), **(extra or {})}
    if artifacts.matches(path, params):
        return _read(path)
    report = analyze(objective, config)
    report.extra = dict(extra or {})
    blob = dataclasses.asdict(report)
    blob["vectors"] = report.vectors  # keep tensors as tensors
    del blob["loaded"]
    blob["slq_nodes"], blob["slq_weights"] = report.slq_nodes.tolist(), report.slq_weights.tolist()
    artifacts.save_torch(path, blob, params=params, seed=config.seed, profile=profile,
                         extra={"top_eigenvalue": report.top_eigenvalue, "trace": report.trace})
    return report


def _read(path: Path) -> CurvatureReport:
    blob = artifacts.load_torch(path)
    blob["slq_nodes"], blob["slq_weights"] = np.asarray(blob["slq_nodes"]), np.asarray(blob["slq_weights"])
    return CurvatureReport(**blob, loaded=True)


def load_report(path: Path, objective: Objective) -> CurvatureReport:
    """The report at ``path``, checked to belong to ``objective``'s model: the same weights and
    buffers (the data may differ: a landscape may use more samples than the Hessian did).

    Raises:
        ArtifactMissingError: no report (names the notebook that writes it).
        ValueError: the report was computed for another model (retrained since): rerun the
            chapter that writes it.
    """
    params = artifacts.read_meta(path)["params"]
    theirs = (params.get("weights"), params.get("objective", {}).get("buffers"))
    if theirs != (artifacts.digest(objective.params), objective.data_key()["buffers"]):
        raise ValueError(f"the curvature report {path} was computed for other weights than this model's "
                         f"(retrained since?): {artifacts.producer_hint(path)}")
    return _read(path)


def density_on_grid(report: CurvatureReport, n: int = 400, rel_sigma: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian-broadened SLQ density on a grid spanning the Ritz values, with
    ``sigma = rel_sigma * (max - min)``."""
    from .hessian import SpectralDensity

    esd = SpectralDensity(report.slq_nodes, report.slq_weights, 0)
    lo, hi = float(np.nanmin(report.slq_nodes)), float(np.nanmax(report.slq_nodes))
    pad = 0.05 * (hi - lo) + 1e-12
    grid = np.linspace(lo - pad, hi + pad, n)
    return grid, esd.density(grid, rel_sigma * (hi - lo) + 1e-12)
