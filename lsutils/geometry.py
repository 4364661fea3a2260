r"""The local geometry of training: Hessian outliers, gradient confinement, curvature over time.

Fort & Ganguli 2019 ("Emergent properties of the local geometry of neural loss landscapes")
name four properties of classification landscapes; this module measures the first three on a
trained network and along its saved training trajectory (the fourth, random subspaces, is
:mod:`lsutils.goldilocks`):

1. **Outliers.** About :math:`C` eigenvalues stand above the bulk of the Hessian, and they
   belong to the Gauss-Newton part :math:`G` (:class:`~lsutils.gauss_newton.GaussNewtonOperator`).
   :func:`spectrum` gives the top eigenvalues of :math:`H` or :math:`G`, the count at the largest
   log-gap, the ratio :math:`\lambda_C / \lambda_{C+1}` against the typical neighbouring ratio,
   and the *class structure* of the top eigenvectors: how much of the span of the per-class mean
   gradients :math:`\bar g_c = \frac{1}{N_c}\sum_{y_i = c} \nabla_\theta \ell_i` lies in the
   top-:math:`C` eigenspace :math:`V_C`,

   .. math:: \text{overlap} = \frac{\lVert V_C^\top Q \rVert_F^2}{\operatorname{rank} Q},
      \qquad Q \text{ an orthonormal basis of } \operatorname{span}\{\bar g_1, \dots, \bar g_C\},

   which is 1 when the outliers are the class directions and :math:`C/D` for a random subspace.
2. **Gradient confinement.** :func:`energy_fractions` is :math:`\lVert V_k^\top g \rVert^2 /
   \lVert g \rVert^2` for :math:`k = 1, \dots, K`, against the random baseline :math:`k / D`.
3. **Curvature along training.** :func:`epoch_geometry` measures, at one saved epoch, the top
   eigenvalues and the trace of the training-mode loss, the confinement of the full-batch and of
   minibatch gradients, the weight norm and the logit scale.

BatchNorm: a network trained with BatchNorm is, during training, a function of each minibatch's
statistics; its eval-mode loss (running statistics) is another function with another Hessian.
:func:`batch_statistics` gives the *training-mode* loss (every batch of ``batch_size`` normalized
with its own statistics, in a fixed partition), the landscape SGD descends.

Example:
    >>> import torch
    >>> basis = torch.eye(4, dtype=torch.float64)[:2]              # V: the first two axes
    >>> energy_fractions(basis, torch.tensor([3.0, 0.0, 4.0, 0.0], dtype=torch.float64)).tolist()
    [0.36, 0.36]
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.func import grad, replace_all_batch_norm_modules_, vjp

from .curvature import count_outliers, gap_ratio
from .gauss_newton import GaussNewtonOperator
from . import artifacts
from .data import Dataset
from .directions import flatten
from .hessian import Eigenpairs, HessianOperator, hutchinson_trace, top_eigenpairs
from .models import ResNetSpec
from .objectives import ClassifierObjective, PinnObjective
from .settings import check, setting
from .sweep import Cell
from .train import epoch_state, run_dir_for

__all__ = ["OPERATORS", "MODES", "batch_statistics", "class_gradients", "energy_fractions", "class_overlap",
           "spectrum", "epoch_geometry", "logit_scale", "weight_norm", "term_confinement", "GeometryRecipe",
           "GeometryTask", "geometry_cells", "TrainingGeometry"]

#: the curvature operators :func:`spectrum` knows: the Hessian and its Gauss-Newton part.
OPERATORS = ("hessian", "gauss_newton")

#: BatchNorm's two losses: ``eval`` (running statistics) and ``train`` (each batch's own).
MODES = ("eval", "train")


def batch_statistics(objective: ClassifierObjective, batch_size: int) -> ClassifierObjective:
    """The training-mode loss of ``objective``'s network on its data: BatchNorm normalizes each
    batch of ``batch_size`` samples (a fixed partition, in order) with that batch's own mean and
    variance, as in training. A network without BatchNorm gives its own loss back, batched.

    Raises:
        ValueError: ``batch_size`` below 2 (a batch statistic needs two samples).
    """
    if batch_size < 2:
        raise ValueError(f"batch_size = {batch_size}; allowed: an integer >= 2 (a batch statistic)")
    net = copy.deepcopy(objective.model)
    replace_all_batch_norm_modules_(net)  # no running statistics: every forward pass uses the batch's own
    return ClassifierObjective(net, objective.x, objective.y, device=objective.device, batch_size=batch_size)


def weight_norm(objective: ClassifierObjective) -> float:
    r""":math:`\lVert\theta\rVert_2` of the objective's parameters."""
    return float(sum(p.double().pow(2).sum() for p in objective.params.values()) ** 0.5)


@torch.no_grad()
def logit_scale(objective: ClassifierObjective) -> float:
    """The root mean square of the logits, each sample's centred on its own mean (the scale the
    softmax sees; probabilities freeze as it grows)."""
    total, n = 0.0, 0
    for xb, _ in objective._batches():
        z = objective.forward(objective.params, xb).double()
        total += float((z - z.mean(1, keepdim=True)).pow(2).mean(1).sum())
        n += len(xb)
    return (total / n) ** 0.5


def _gradient(objective: ClassifierObjective, x: Tensor, y: Tensor) -> Tensor:
    sub = copy.copy(objective)
    sub.x, sub.y = x, y
    g = grad(sub.loss)(objective.params)
    return flatten(g, list(objective.params)).detach()


def class_gradients(objective: ClassifierObjective, num_classes: int) -> Tensor:
    r"""The mean loss gradient over the samples of each class, :math:`\bar g_c`, as rows
    ``[C, D]`` (a class without samples gives a zero row). The samples go through the network in
    the objective's own batches (with BatchNorm's batch statistics, the statistics of mixed
    batches, as in training), and one pullback per class weights their losses."""
    names = list(objective.params)

    def losses(p: Mapping[str, Tensor]) -> Tensor:
        return torch.cat([torch.nn.functional.cross_entropy(objective.forward(p, xb), yb, reduction="none")
                          for xb, yb in objective._batches()])

    _, pullback = vjp(losses, objective.params)
    dtype, rows = next(iter(objective.params.values())).dtype, []
    for c in range(num_classes):
        mask = (objective.y == c).to(dtype)
        rows.append(flatten(pullback(mask / mask.sum().clamp_min(1.0))[0], names).double())
    return torch.stack(rows)


def energy_fractions(basis: Tensor, g: Tensor) -> np.ndarray:
    r"""Cumulative :math:`\lVert V_k^\top g\rVert^2 / \lVert g\rVert^2` for :math:`k = 1..K`, where
    the rows of ``basis`` (``[K, D]``, orthonormal, in order of eigenvalue) span :math:`V_K`."""
    g = g.to(basis.dtype)
    coef = (basis @ g).pow(2)
    return (torch.cumsum(coef, 0) / g.pow(2).sum().clamp_min(1e-300)).cpu().numpy()


def class_overlap(basis: Tensor, class_grads: Tensor, tol: float = 1e-8) -> float:
    r""":math:`\lVert V^\top Q\rVert_F^2 / \operatorname{rank} Q`: the mean fraction of the span of
    the class gradients (rows of ``class_grads``) inside the span of ``basis``'s rows."""
    u, s, _ = torch.linalg.svd(class_grads.T.to(basis.dtype), full_matrices=False)
    q = u[:, s > tol * s.max()]
    if q.shape[1] == 0:
        return float("nan")
    return float((basis @ q).pow(2).sum() / q.shape[1])


def _top(op: HessianOperator, k: int, tol: float, max_steps: int, seed: int) -> tuple[Eigenpairs, Tensor]:
    """The top ``k`` eigenpairs of ``op`` and their vectors as orthonormal rows ``[k, D]`` (float64)."""
    eig = top_eigenpairs(op, k=min(k, op.dim), tol=tol, max_steps=max(max_steps, k + 2), seed=seed)
    return eig, torch.stack([op.flatten(v) for v in eig.vectors]).double()


def _operator(objective: ClassifierObjective, operator: str) -> HessianOperator:
    if operator not in OPERATORS:
        raise ValueError(f"operator = {operator!r}; allowed: {', '.join(OPERATORS)}")
    return HessianOperator(objective) if operator == "hessian" else GaussNewtonOperator(objective)


def spectrum(objective: ClassifierObjective, operator: str, num_classes: int, *, k: int, tol: float = 1e-2,
             max_steps: int = 120, seed: int = 0) -> dict[str, Any]:
    r"""The top ``k`` eigenvalues of the Hessian or the G-term of ``objective`` and what
    Fort & Ganguli predict of them.

    Returns:
        ``eigenvalues`` (descending), ``outliers`` (the count at the largest log-gap),
        ``gap_at_c`` and ``typical_gap`` (:func:`~lsutils.curvature.gap_ratio` at :math:`C`),
        ``class_overlap`` of the top-:math:`C` eigenspace with the class gradients and its random
        baseline ``C / D``, ``class_cosines`` (``|cos|`` of each top eigenvector with each class
        gradient, ``[k][C]``), ``gradient_fractions`` (the full-batch gradient's, ``k = 1..K``),
        ``converged`` and ``products`` (no time: a sweep's record is the same on any machine).
    """
    if k < num_classes + 1:
        raise ValueError(f"k = {k}; allowed: at least num_classes + 1 = {num_classes + 1} (a gap after C)")
    op = _operator(objective, operator)
    eig, basis = _top(op, k, tol, max_steps, seed)
    cg = class_gradients(objective, num_classes)
    unit = cg / cg.norm(dim=1, keepdim=True).clamp_min(1e-300)
    gap, typical = gap_ratio(eig.values, num_classes)
    full = _gradient(objective, objective.x, objective.y).double()
    return {"operator": operator, "eigenvalues": [float(v) for v in eig.values], "outliers": count_outliers(eig.values),
            "gap_at_c": gap, "typical_gap": typical,
            "class_overlap": class_overlap(basis[:num_classes], cg), "random_overlap": num_classes / op.dim,
            "class_cosines": (basis @ unit.T).abs().tolist(),
            "gradient_fractions": energy_fractions(basis, full).tolist(),
            "converged": bool(eig.converged), "products": op.num_products, "num_params": op.dim}


def epoch_geometry(objective: ClassifierObjective, *, k: int, trace_probes: int, minibatches: int,
                   batch_size: int, tol: float = 1e-2, max_steps: int = 120, seed: int = 0,
                   pool: tuple[Tensor, Tensor] | None = None) -> dict[str, Any]:
    r"""The local geometry at one point of training, on ``objective`` (pass the training-mode loss,
    :func:`batch_statistics`, for what SGD saw).

    Returns:
        ``eigenvalues`` (top ``k``), ``trace`` and ``trace_stderr`` (Hutchinson), ``full_fractions``
        (the full-batch gradient's confinement, ``k = 1..K``), ``minibatch_fractions`` (the mean
        over ``minibatches`` gradients of ``batch_size`` samples drawn from ``pool``, the training set
        SGD samples from; default the objective's own data), ``gradient_norm``,
        ``weight_norm``, ``logit_scale``, ``loss`` and ``accuracy``.
    """
    op = HessianOperator(objective)
    eig, basis = _top(op, k, tol, max_steps, seed)
    trace = hutchinson_trace(op, trace_probes, seed=seed)
    full = _gradient(objective, objective.x, objective.y).double()
    gen = torch.Generator().manual_seed(seed)
    px, py = (objective.x, objective.y) if pool is None else (pool[0], pool[1])
    px, py = px.to(objective.device), py.to(objective.device)
    mini = []
    for _ in range(minibatches):
        idx = torch.randperm(len(px), generator=gen)[:min(batch_size, len(px))].to(objective.device)
        mini.append(energy_fractions(basis, _gradient(objective, px[idx], py[idx]).double()))
    metrics = objective.metrics()
    return {"eigenvalues": [float(v) for v in eig.values], "converged": bool(eig.converged),
            "trace": trace.mean, "trace_stderr": trace.stderr,
            "full_fractions": energy_fractions(basis, full).tolist(),
            "minibatch_fractions": np.mean(mini, axis=0).tolist() if mini else [],
            "gradient_norm": float(full.norm()), "weight_norm": weight_norm(objective),
            "logit_scale": logit_scale(objective), "loss": metrics["loss"], "accuracy": metrics["accuracy"],
            "num_params": op.dim}


def term_confinement(objective: PinnObjective, *, k: int, tol: float = 1e-2, max_steps: int = 120,
                     seed: int = 0) -> dict[str, Any]:
    r"""A PINN's answer to "what plays the role of :math:`C`?": the top ``k`` Hessian eigenvalues
    (count at the largest log-gap) and, for the gradient of the whole loss and of each of its
    terms (residual, initial and boundary condition), the cumulative fraction in the top
    eigenspace, ``k = 1..K``."""
    op = HessianOperator(objective)
    eig, basis = _top(op, k, tol, max_steps, seed)
    names = list(objective.params)
    fractions = {"loss": energy_fractions(basis, flatten(grad(objective.loss)(objective.params), names).double())}
    for term in objective.terms(objective.params):
        g = grad(lambda p, t=term: objective.terms(p)[t])(objective.params)
        fractions[term] = energy_fractions(basis, flatten(g, names).double())
    return {"eigenvalues": [float(v) for v in eig.values], "outliers": count_outliers(eig.values),
            "fractions": {t: f.tolist() for t, f in fractions.items()}, "num_params": op.dim,
            "converged": bool(eig.converged)}


@dataclass(frozen=True)
class GeometryRecipe:
    """How the geometry of a trained network and its trajectory is measured."""

    samples: int = setting(512, lo=2, doc="training samples of the loss whose curvature is measured")
    batch_size: int = setting(128, lo=2, doc="BatchNorm batches of the training-mode loss, and minibatch size")
    top_k: int = setting(20, lo=2, doc="top eigenpairs at every epoch (2C: the confinement up to k = 2C)")
    spectrum_k: int = setting(30, lo=2, doc="top eigenvalues of the final spectra (H and G)")
    tol: float = setting(0.01, lo=0.0, lo_open=True, doc="relative residual of the Ritz pairs")
    max_steps: int = setting(120, lo=2, doc="cap on Lanczos steps (products) per epoch; the final spectra take at "
                                            "least 3 spectrum_k")
    trace_probes: int = setting(10, lo=2, doc="Hutchinson probes of the trace at every epoch")
    minibatches: int = setting(4, lo=0, doc="minibatch gradients per epoch, drawn from the whole training set")

    def __post_init__(self) -> None:
        check(self)


def geometry_cells(models: Sequence[tuple[str, int]], epochs: Sequence[int], final: int, recipe: GeometryRecipe,
                   data: Dataset, profile: str) -> list[Cell]:
    """The sweep of chapter 9: for each ``(spec name, seed)`` of chapter 1, one cell per saved epoch
    in ``epochs`` (training-mode geometry) and one per operator and BatchNorm mode at epoch ``final``
    (the spectra). Each cell's key holds the digest of the weights it measures."""
    base = {"recipe": dataclasses.asdict(recipe), "data": data.digest}
    cells = []
    for name, seed in models:
        run_dir = run_dir_for(profile, name, seed)
        digests = {e: artifacts.digest(epoch_state(run_dir, e)) for e in sorted({*epochs, final})}
        for e in epochs:
            cells.append(Cell("training_geometry", f"{name}_seed{seed}_epoch{e:03d}",
                              {**base, "model": name, "seed": int(seed), "epoch": int(e), "kind": "epoch",
                               "mode": "train", "weights": digests[e]}))
        for op in OPERATORS:
            for mode in MODES:
                cells.append(Cell("training_geometry", f"{name}_seed{seed}_{op}_{mode}",
                                  {**base, "model": name, "seed": int(seed), "epoch": int(final), "kind": "spectrum",
                                   "operator": op, "mode": mode, "weights": digests[final]}))
    return cells


@dataclass(frozen=True)
class GeometryTask:
    """Sweep task: load a saved epoch of a chapter-1 run and measure its geometry (an ``epoch``
    cell) or its spectrum (a ``spectrum`` cell)."""

    specs: Mapping[str, ResNetSpec]
    data: Dataset
    recipe: GeometryRecipe
    profile: str

    def objective(self, params: Mapping[str, Any], device: torch.device) -> ClassifierObjective:
        """The loss a cell measures: its epoch's network on the first ``samples`` training samples,
        in the cell's BatchNorm mode."""
        net = self.specs[params["model"]].build()
        net.load_state_dict(epoch_state(run_dir_for(self.profile, params["model"], params["seed"]), params["epoch"]))
        n = self.recipe.samples
        obj = ClassifierObjective(net, self.data.x_train[:n], self.data.y_train[:n], device=device)
        return batch_statistics(obj, self.recipe.batch_size) if params["mode"] == "train" else obj

    def __call__(self, cell: Cell, device: torch.device) -> dict[str, Any]:
        r, p = self.recipe, cell.params
        obj = self.objective(p, device)
        if p["kind"] == "epoch":
            return epoch_geometry(obj, k=r.top_k, trace_probes=r.trace_probes, minibatches=r.minibatches,
                                  batch_size=r.batch_size, tol=r.tol, max_steps=r.max_steps, seed=cell.seed,
                                  pool=(self.data.x_train, self.data.y_train))
        return {**spectrum(obj, p["operator"], self.data.num_classes, k=r.spectrum_k, tol=r.tol,
                           max_steps=max(r.max_steps, 3 * r.spectrum_k), seed=cell.seed), "mode": p["mode"]}


@dataclass
class TrainingGeometry:
    """Chapter 9's measurements of a profile.

    Attributes:
        epochs: model label -> one row per measured epoch (``epoch``, ``lr`` and
            :func:`epoch_geometry`'s keys).
        spectra: ``(model label, operator, mode)`` -> :func:`spectrum`'s output.
        goldilocks: one row per subspace cell (``skip``, ``radius``, ``dim`` and the task's metrics).
        num_classes: :math:`C`.
        momentum: the training's SGD momentum (its stability threshold is :math:`2(1 + \\beta)/\\eta`).
        failures: cell name -> error, for cells that failed.
        seconds, ran: the sweeps' time and the number of cells computed (not loaded).
    """

    epochs: dict[str, list[dict[str, Any]]]
    spectra: dict[tuple[str, str, str], dict[str, Any]]
    goldilocks: list[dict[str, Any]]
    num_classes: int
    momentum: float
    failures: dict[str, str]
    seconds: float
    ran: int

    def model_rows(self) -> list[dict[str, Any]]:
        """One row per (model, operator, BatchNorm mode) of the final spectra: the outlier count, the
        gap ratio at C against the typical one, the class overlap against its random baseline."""
        return [{"model": label, "operator": "H" if op == "hessian" else "G", "mode": mode,
                 "top": s["eigenvalues"][0], "outliers": s["outliers"], "gap_at_c": s["gap_at_c"],
                 "typical_gap": s["typical_gap"], "class_overlap": s["class_overlap"],
                 "random_overlap": s["random_overlap"], "converged": s["converged"]}
                for (label, op, mode), s in self.spectra.items()]

    def training_rows(self) -> list[dict[str, Any]]:
        """One row per model: the gradient's fraction in the top-C eigenspace at the first, middle and
        last measured epochs (full batch and minibatch), the epoch of peak top eigenvalue and that
        eigenvalue against the stability threshold 2/lr there."""
        c, out = self.num_classes, []
        for label, rows in self.epochs.items():
            if not rows:
                continue
            picks = {"start": rows[0], "middle": rows[len(rows) // 2], "end": rows[-1]}
            peak = max(rows, key=lambda r: r["eigenvalues"][0])
            row: dict[str, Any] = {"model": label}
            for name, r in picks.items():
                row[f"{name}_epoch"] = r["epoch"]
                row[f"{name}_full"] = r["full_fractions"][min(c, len(r["full_fractions"])) - 1]
                mini = r.get("minibatch_fractions") or [float("nan")]
                row[f"{name}_mini"] = mini[min(c, len(mini)) - 1]
            row.update(peak_epoch=peak["epoch"], peak_eigenvalue=peak["eigenvalues"][0], peak_threshold=2 / peak["lr"],
                       final_eigenvalue=rows[-1]["eigenvalues"][0], baseline=c / rows[-1]["num_params"])
            out.append(row)
        return out
