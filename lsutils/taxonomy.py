r"""A phase diagram of loss landscapes over load and temperature (Yang et al. 2021).

Yang, Hodgkinson, Theisen, Zou, Gonzalez, Ramchandran and Mahoney 2021 ("Taxonomizing local
versus global structure in neural network loss landscapes") train many models over a grid of
*load* (the width of the network, or the quality of its data) and *temperature* (the batch
size: small batches are hot) and measure, in every cell,

- the **local** shape: the top Hessian eigenvalue :math:`\lambda_{\max}` (Lanczos) and the
  trace :math:`\operatorname{tr} H` (Hutchinson) at the trained weights;
- the **global** shape: the mode connectivity :math:`\mathrm{mc} = \bar E - E(t^*)` of the
  training error along a trained Bezier curve between two seeds (negative: a barrier,
  poorly connected; near 0: well connected), and how alike the seeds' functions are, the
  linear CKA of their softmax outputs on mixup inputs (:mod:`lsutils.similarity`), beside
  their L2 distance;
- training loss and test accuracy.

A sweep (:mod:`lsutils.sweep`) trains and measures every ``(width, batch size, label noise,
seed)`` cell (:class:`ModelTask`), then connects and compares the seeds of each grid point
(:class:`PairTask`). :func:`phase_table` averages over seeds and :func:`classify` names the
phases by the criteria the chapter states:

- *poorly connected* when :math:`\mathrm{mc} < -\tau` (training-error points), else well
  connected;
- *sharp* when :math:`\lambda_{\max}` is at least ``sharp_at``;
- I: poorly connected and sharp; II: poorly connected and flat; III: well connected and
  sharp; IV-A: well connected, flat and CKA below ``cka_split`` (dissimilar seeds); IV-B:
  well connected, flat and CKA at least ``cka_split``.

Example:
    >>> rows = [{"mc": -8.0, "top_eigenvalue": 50.0, "cka": 0.4}, {"mc": -0.1, "top_eigenvalue": 2.0, "cka": 0.9}]
    >>> [classify(r, mc_tolerance=1.0, sharp_at=10.0, cka_split=0.8) for r in rows]
    ['I', 'IV-B']
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from . import artifacts
from .connectivity import Curve, CurveConfig, evaluate_path, fit_curve
from .data import Dataset
from .hessian import HessianOperator, hutchinson_trace, top_eigenpairs
from .models import ResNetSpec
from .objectives import ClassifierObjective
from .settings import check, setting
from .similarity import seed_cka, seed_distance
from .sweep import Cell
from .train import TrainConfig, evaluate, train_or_load

__all__ = ["PhaseRecipe", "ModelTask", "PairTask", "model_cells", "pair_cells", "phase_table", "classify",
           "geometric_middle", "PhaseDiagrams", "PHASES", "PUBLISHED"]

#: the phases in the order the chapter names them.
PHASES = ("I", "II", "III", "IV-A", "IV-B")

#: Yang et al. 2021's ResNet18 on CIFAR-10 at batch size 128 (their Figure 2), by width.
PUBLISHED = {"width": [2, 8, 16, 32, 128], "top_eigenvalue": [414.0, 14.3, 4.96, 2.82, 1.66],
             "cka": [0.49, 0.55, 0.67, 0.72, 0.76], "mc_first": -14.6, "mc_last": 0.0}


@dataclass(frozen=True)
class PhaseRecipe:
    """What every cell of a phase diagram shares: the network, its training and the measurements."""

    depth: int = setting(8, lo=8, doc="ResNet depth, 6n + 2 (stages of k, 2k, 4k channels)")
    epochs: int = setting(20, lo=1, doc="training epochs")
    lr: float = setting(0.05, lo=0.0, lo_open=True, doc="peak learning rate (cosine), the same at every batch size")
    momentum: float = setting(0.9, lo=0.0, hi=0.999, doc="SGD momentum")
    weight_decay: float = setting(5e-4, lo=0.0, doc="L2 penalty")
    augment: bool = setting(False, doc="random shift of the signals")
    hessian_samples: int = setting(1000, lo=2, doc="training samples of the Hessian's loss")
    lanczos_steps: int = setting(40, lo=2, doc="largest Lanczos steps for the top eigenvalue")
    lanczos_tol: float = setting(0.01, lo=0.0, lo_open=True, doc="relative residual of the top Ritz pair")
    trace_probes: int = setting(20, lo=2, doc="Hutchinson probes of the trace")
    curve_steps: int = setting(600, lo=0, doc="Bezier curve between two seeds: SGD steps")
    curve_lr: float = setting(0.1, lo=0.0, lo_open=True, doc="curve learning rate")
    curve_points: int = setting(9, lo=3, doc="t at which the curve is evaluated")
    path_samples: int = setting(1000, lo=2, doc="training samples paths are evaluated on (and BN recomputed)")
    cka_samples: int = setting(1000, lo=2, doc="training samples the mixup inputs of CKA are made from")

    def __post_init__(self) -> None:
        check(self)
        if (self.depth - 2) % 6:
            raise ValueError(f"depth = {self.depth}; allowed: 6n + 2 (8, 14, 20, ...)")

    #: the fields a model cell depends on (training and the Hessian); the others are the pairs'.
    MODEL_FIELDS = ("depth", "epochs", "lr", "momentum", "weight_decay", "augment", "hessian_samples", "lanczos_steps",
                    "lanczos_tol", "trace_probes")

    def key(self, part: str) -> dict[str, Any]:
        """The recipe's fields a ``model`` cell or a ``pair`` cell depends on (its cache key)."""
        fields = dataclasses.asdict(self)
        if part == "model":
            return {k: fields[k] for k in self.MODEL_FIELDS}
        return {k: v for k, v in fields.items() if k not in self.MODEL_FIELDS}

    def train_config(self, batch_size: int) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=batch_size, lr=self.lr, momentum=self.momentum,
                           weight_decay=self.weight_decay, schedule="cosine", augment=self.augment)

    def spec(self, width: int, data: Dataset) -> ResNetSpec:
        return ResNetSpec(self.depth, 1, True, dim=data.dim, in_channels=data.in_channels,
                          num_classes=data.num_classes, base_channels=width)


def _point_name(width: int, batch_size: int, noise: float) -> str:
    return f"k{width}_b{batch_size}_noise{noise:g}"


def model_cells(points: Sequence[tuple[int, int, float]], seeds: Sequence[int], recipe: PhaseRecipe,
                data: Dataset) -> list[Cell]:
    """One cell per grid point ``(width, batch_size, noise)`` and seed."""
    base = {"recipe": recipe.key("model"), "data": data.digest}
    return [Cell("taxonomy", f"{_point_name(*p)}_seed{s}",
                 {**base, "width": p[0], "batch_size": p[1], "noise": float(p[2]), "seed": int(s)})
            for p in points for s in seeds]


def pair_cells(points: Sequence[tuple[int, int, float]], seeds: Sequence[int], recipe: PhaseRecipe,
               data: Dataset) -> list[Cell]:
    """One cell per grid point: its seeds connected and compared (the models' cells are its inputs)."""
    if len(seeds) < 2:
        raise ValueError(f"seeds = {list(seeds)}; allowed: at least 2 (mc and CKA compare seeds)")
    out = []
    for p in points:
        models = model_cells([p], seeds, recipe, data)
        out.append(Cell("taxonomy", _point_name(*p), {"models": [dict(c.params) for c in models],
                                                      "recipe": recipe.key("pair"), "seed": int(seeds[0])}))
    return out


def _noisy(data: Dataset, noise: float) -> Dataset:
    return data.with_label_noise(noise, seed=0) if noise > 0 else data  # one corruption, shared by all cells


@dataclass(frozen=True)
class ModelTask:
    """Sweep task: train (or load) the model of one cell and measure its local metrics."""

    data: Dataset
    recipe: PhaseRecipe
    profile: str

    def run(self, params: Mapping[str, Any], device: torch.device) -> tuple[Any, Dataset]:
        """The trained network of a model cell's parameters (trained or loaded) and its data."""
        data = _noisy(self.data, params["noise"])
        spec = self.recipe.spec(params["width"], self.data)
        name = f"{_point_name(params['width'], params['batch_size'], params['noise'])}_seed{params['seed']}"
        run = train_or_load(spec, data, self.recipe.train_config(params["batch_size"]), seed=params["seed"],
                            run_dir=artifacts.stage_dir(self.profile, "taxonomy") / "models" / name, device=device,
                            progress=False, profile=self.profile)
        return run, data

    def __call__(self, cell: Cell, device: torch.device) -> dict[str, float]:
        run, data = self.run(cell.params, device)
        model = run.model.to(device).eval()
        train_loss, train_acc = evaluate(model, data.x_train.to(device), data.y_train.to(device))
        n = self.recipe.hessian_samples
        obj = ClassifierObjective(model, data.x_train[:n], data.y_train[:n], device=device)
        op = HessianOperator(obj)
        top = top_eigenpairs(op, 1, tol=self.recipe.lanczos_tol, max_steps=self.recipe.lanczos_steps, seed=cell.seed)
        trace = hutchinson_trace(op, self.recipe.trace_probes, seed=cell.seed)
        return {"train_loss": train_loss, "train_error": 100 * (1 - train_acc), "test_acc": 100 * run.test_acc,
                "top_eigenvalue": float(top.values[0]), "trace": trace.mean, "trace_stderr": trace.stderr,
                "weight_norm": float(sum(p.detach().double().pow(2).sum() for p in model.parameters()) ** 0.5),
                "num_params": sum(p.numel() for p in model.parameters())}


@dataclass(frozen=True)
class PairTask:
    """Sweep task: one grid point's seeds (their models trained first) connected by a Bezier curve
    (mc of the training error, the line's barrier beside it) and compared (CKA, L2 distance)."""

    models: ModelTask

    def __call__(self, cell: Cell, device: torch.device) -> dict[str, float]:
        recipe = self.models.recipe
        runs = [self.models.run(p, device) for p in cell.params["models"]]
        nets = [r.model.to(device).eval() for r, _ in runs]
        data = runs[0][1]
        n = recipe.path_samples
        train = ClassifierObjective(nets[0], data.x_train, data.y_train, device=device)  # minibatches of all
        obj = ClassifierObjective(nets[0], data.x_train[:n], data.y_train[:n], device=device)
        a, b = ({k: v.detach() for k, v in net.named_parameters()} for net in nets[:2])
        config = CurveConfig(steps=recipe.curve_steps, lr=recipe.curve_lr, points=recipe.curve_points,
                             seed=cell.seed)
        path = artifacts.stage_dir(self.models.profile, "taxonomy") / "curves" / f"{cell.name}.pt"
        curve, _ = fit_curve(train, a, b, config, path=path, profile=self.models.profile, progress=False)
        on_curve = evaluate_path(obj, curve, recipe.curve_points)
        on_line = evaluate_path(obj, Curve.line(a, b), recipe.curve_points)
        x = data.x_train[:recipe.cka_samples].to(device)
        return {"mc": on_curve.mc, "curve_barrier": on_curve.barrier("error"), "line_barrier": on_line.barrier("error"),
                "line_mc": on_line.mc, "cka": seed_cka(nets, x, seed=cell.seed),
                "l2_distance": seed_distance([dict(net.named_parameters()) for net in nets])}


def phase_table(points: Sequence[tuple[int, int, float]], model_metrics: Mapping[str, Mapping[str, float]],
                pair_metrics: Mapping[str, Mapping[str, float]], seeds: Sequence[int]) -> list[dict[str, Any]]:
    """One row per grid point: the model metrics averaged over seeds (with the spread of test
    accuracy) and the point's pair metrics. A point with a missing cell is left out."""
    rows = []
    for w, bs, noise in points:
        name = _point_name(w, bs, noise)
        per_seed = [model_metrics.get(f"{name}_seed{s}") for s in seeds]
        if any(m is None for m in per_seed) or name not in pair_metrics:
            continue
        row: dict[str, Any] = {"width": w, "batch_size": bs, "noise": noise}
        for key in per_seed[0]:
            row[key] = float(np.mean([m[key] for m in per_seed]))
        row["test_acc_std"] = float(np.std([m["test_acc"] for m in per_seed], ddof=1)) if len(seeds) > 1 else 0.0
        row.update(pair_metrics[name])
        rows.append(row)
    return rows


def classify(row: Mapping[str, float], *, mc_tolerance: float, sharp_at: float, cka_split: float) -> str:
    """The phase of one grid point by the chapter's criteria (see the module docstring)."""
    poorly = row["mc"] < -mc_tolerance
    sharp = row["top_eigenvalue"] >= sharp_at
    if poorly:
        return "I" if sharp else "II"
    if sharp:
        return "III"
    return "IV-B" if row["cka"] >= cka_split else "IV-A"


@dataclass
class PhaseDiagrams:
    """Both diagrams of a profile: rows of :func:`phase_table` over width x batch size (clean labels)
    and over width x label noise, the cells that failed (name -> error) and the sweeps' time."""

    batch: list[dict[str, Any]]
    noise: list[dict[str, Any]]
    failures: dict[str, str]
    seconds: float
    ran: int

    def thresholds(self, *, sharp_at: float = 0.0, cka_split: float = 0.0) -> tuple[float, float]:
        """``sharp_at`` and ``cka_split``, a 0 replaced by the middle of both diagrams' range (the
        geometric middle of the top eigenvalues, the arithmetic middle of CKA)."""
        rows = self.batch + self.noise
        if not sharp_at:
            sharp_at = geometric_middle([r["top_eigenvalue"] for r in rows])
        if not cka_split:
            ckas = [r["cka"] for r in rows]
            cka_split = (min(ckas) + max(ckas)) / 2
        return sharp_at, cka_split

    def classify(self, *, mc_tolerance: float, sharp_at: float = 0.0, cka_split: float = 0.0) -> tuple[float, float]:
        """Write each row's ``phase`` (:func:`classify`); returns the thresholds used."""
        sharp_at, cka_split = self.thresholds(sharp_at=sharp_at, cka_split=cka_split)
        for row in self.batch + self.noise:
            row["phase"] = classify(row, mc_tolerance=mc_tolerance, sharp_at=sharp_at, cka_split=cka_split)
        return sharp_at, cka_split


def geometric_middle(values: Sequence[float]) -> float:
    """The geometric mean of the smallest and largest positive value (the middle of a log axis)."""
    v = [x for x in values if x > 0 and math.isfinite(x)]
    if not v:
        raise ValueError("no positive finite values")
    return math.sqrt(min(v) * max(v))
