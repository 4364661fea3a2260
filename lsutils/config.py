"""Profiles and data paths.

A *profile* fixes the scale of every notebook in the book: ``smoke`` (the test
suite, minutes on 2 CPU cores), ``quick`` (real results on a laptop CPU) and
``full`` (paper scale on one GPU). Each lives in
``notebooks/profiles/<name>.yaml``::

    seed: 0                  # global seed, combined with per-run seeds
    device: auto             # auto | cpu | cuda | mps
    gpu_sized: false         # warn when this profile runs on a CPU
    notebooks:
      02_train_pinns:        # one section per notebook, its parameters
        betas: [1, 30]
        ...

Loading validates everything before any work starts: an unknown profile, an
unknown key or a value out of range raises :class:`ProfileError` naming the key
and the values it accepts.

Example:
    >>> from lsutils.config import load_profile
    >>> p = load_profile("smoke")
    >>> p.notebook_params("02_train_pinns")["betas"]
    [1.0, 30.0]
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from .connections import ConnectorConfig, CurveConfig, SimplexConfig
from .curvature import CurvatureConfig
from .geometry import GeometryRecipe
from .goldilocks import GoldilocksRecipe
from .logit_model import LogitModel
from .paths import data_root, profiles_dir, repo_root
from .pinn import PinnTrainConfig
from .repro import DEVICES
from .sweep import executor_kind
from .settings import SettingError, check_scalar, check_value, derive, same_as, setting
from .train import TrainConfig
from .taxonomy import PhaseRecipe
from .trajectories import JumpConfig

__all__ = [
    "ProfileError",
    "Profile",
    "PinnSweepParams",
    "ResnetTrainParams",
    "HessianParams",
    "LandscapeParams",
    "TopologyParams",
    "JumpRetrainParams",
    "ConnectivityParams",
    "TaxonomyParams",
    "TrainingGeometryParams",
    "NOTEBOOK_SCHEMAS",
    "PROFILE_NAMES",
    "repo_root",
    "profiles_dir",
    "data_root",
    "load_profile",
]

PROFILE_NAMES = ("smoke", "quick", "full")
DEFAULT_BUDGET_GB = 16.0


class ProfileError(SettingError):
    """A profile that does not exist or does not validate."""


_spec = setting  # a profile's own keys are declared like any library setting


@dataclass(frozen=True)
class PinnSweepParams:
    """Parameters of ``02_train_pinns``: the convection sweep of Krishnapriyan et al. 2021.

    The network and training keys are :class:`~lsutils.pinn.PinnTrainConfig`'s (its ranges
    and defaults); :meth:`train_config` is the config every PINN of the sweep is trained with.
    """

    betas: list = _spec([1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0], lo=0.0, lo_open=True,
                        doc="convection coefficients beta")
    seeds: list = _spec([0, 1], lo=0, doc="training seeds per beta")
    n_collocation: int = same_as(PinnTrainConfig, "n_collocation")
    n_initial: int = same_as(PinnTrainConfig, "n_initial")
    n_boundary: int = same_as(PinnTrainConfig, "n_boundary")
    width: int = same_as(PinnTrainConfig, "width")
    depth: int = same_as(PinnTrainConfig, "depth")
    adam_steps: int = same_as(PinnTrainConfig, "adam_steps")
    adam_lr: float = same_as(PinnTrainConfig, "adam_lr")
    lbfgs_steps: int = same_as(PinnTrainConfig, "lbfgs_steps")
    low_beta: float = _spec(1.0, lo=0.0, lo_open=True, doc="beta shown as the success case")
    high_beta: float = _spec(30.0, lo=0.0, lo_open=True, doc="beta shown as the failure case")
    max_low_error: float = _spec(0.05, lo=0.0, doc="largest relative L2 error asserted at beta = 1 (0: no check)")
    min_high_error: float = _spec(0.5, lo=0.0, doc="smallest relative L2 error asserted for beta >= 30 (failure)")
    min_loss_drop: float = _spec(3.0, lo=0.0, doc="smallest fall of the failing PINN's loss asserted (x-fold)")

    def __post_init__(self) -> None:
        for key in ("low_beta", "high_beta"):
            if getattr(self, key) not in self.betas:
                raise ProfileError(f"{key} = {getattr(self, key)!r} must be one of betas: {self.betas}")

    def train_config(self) -> PinnTrainConfig:
        """The training config of every PINN in the sweep."""
        return derive(PinnTrainConfig, self)


@dataclass(frozen=True)
class ResnetTrainParams:
    """Parameters of ``01_train_resnets``: ResNets with and without skips (Xie et al. 2024).

    The recipe keys are :class:`~lsutils.train.TrainConfig`'s; :meth:`train_config` is the
    config the ResNets are trained with.
    """

    dataset: str = _spec("mnist1d", choices=("mnist1d", "cifar10"), doc="training data")
    num_samples: int = _spec(10000, lo=20, doc="MNIST-1D samples generated (80% train)")
    n_train: int = _spec(0, lo=0, doc="use the first n training samples (0: all)")
    n_test: int = _spec(0, lo=0, doc="use the first n test samples (0: all)")
    depth: int = _spec(20, lo=8, doc="ResNet depth, 6n + 2")
    width: int = _spec(1, lo=1, doc="channel multiplier")
    seeds: list = _spec([0, 1, 2], lo=0, doc="training seeds per variant")
    epochs: int = same_as(TrainConfig, "epochs")
    batch_size: int = same_as(TrainConfig, "batch_size")
    lr: float = same_as(TrainConfig, "lr")
    momentum: float = same_as(TrainConfig, "momentum")
    weight_decay: float = same_as(TrainConfig, "weight_decay")
    schedule: str = same_as(TrainConfig, "schedule")
    augment: bool = same_as(TrainConfig, "augment")
    min_skip_acc: float = _spec(95.0, lo=0.0, hi=100.0, doc="smallest mean test accuracy (%) asserted, skip ResNets")

    def __post_init__(self) -> None:
        if (self.depth - 2) % 6:
            raise ProfileError(f"depth = {self.depth}; allowed: 6n + 2 (8, 14, 20, 32, 56, ...)")

    def train_config(self) -> TrainConfig:
        """The training config of every ResNet of the chapter."""
        return derive(TrainConfig, self)


@dataclass(frozen=True)
class HessianParams:
    """Parameters of ``03_hessian``: curvature of every trained ResNet and PINN.

    The measurement keys are :class:`~lsutils.curvature.CurvatureConfig`'s.
    """

    n_samples: int = _spec(1000, lo=0, doc="training samples in the classifier loss (0: all)")
    top_k: int = same_as(CurvatureConfig, "top_k")
    tol: float = same_as(CurvatureConfig, "tol")
    max_steps: int = same_as(CurvatureConfig, "max_steps")
    trace_probes: int = same_as(CurvatureConfig, "trace_probes")
    slq_runs: int = same_as(CurvatureConfig, "slq_runs")
    slq_steps: int = same_as(CurvatureConfig, "slq_steps")
    save_vectors: int = same_as(CurvatureConfig, "save_vectors")
    pyhessian_check: bool = _spec(True, doc="compare the top eigenvalue with PyHessian")

    def __post_init__(self) -> None:
        if self.save_vectors > self.top_k:
            raise ProfileError(f"save_vectors = {self.save_vectors}; allowed: at most top_k = {self.top_k}")

    def curvature_config(self, seed: int) -> CurvatureConfig:
        """The measurement config of every curvature report, with the profile's ``seed``."""
        return derive(CurvatureConfig, self, seed=seed)


@dataclass(frozen=True)
class LandscapeParams:
    """Parameters of ``04_landscapes``: planes, 3-D blocks, trajectories and interpolations."""

    n_samples: int = _spec(1000, lo=0, doc="training samples in the classifier loss (0: all)")
    resolution_2d: int = _spec(21, lo=3, doc="points per axis of the 2-D planes")
    span: float = _spec(1.0, lo=0.0, lo_open=True, doc="half-width of planes and blocks, filter-normalized units")
    resolution_3d: int = _spec(11, lo=3, doc="points per axis of the 3-D Hessian blocks")
    interp_points: int = _spec(41, lo=3, doc="points on the initialization-to-trained line")
    resnet_chunk: int = _spec(1, lo=1, doc="grid points per batched call, ResNets")
    pinn_chunk: int = _spec(64, lo=1, doc="grid points per batched call, PINNs")


@dataclass(frozen=True)
class TopologyParams:
    """Parameters of ``05_topology``: merge trees of every landscape, and planes of every
    trained model for the comparison with performance and curvature."""

    n_samples: int = _spec(1000, lo=0, doc="training samples in the classifier loss (0: all)")
    compare_resolution: int = _spec(15, lo=3, doc="points per axis of the comparison planes")
    span: float = _spec(1.0, lo=0.0, lo_open=True, doc="half-width of the comparison planes, filter-normalized units")
    rel_threshold: float = _spec(0.01, lo=0.0, hi=1.0, doc="simplify pairs below this fraction of the loss range")
    resnet_chunk: int = _spec(1, lo=1, doc="grid points per batched call, ResNets")
    pinn_chunk: int = _spec(64, lo=1, doc="grid points per batched call, PINNs")


@dataclass(frozen=True)
class JumpRetrainParams:
    """Parameters of ``06_jump_and_retrain``: the poorly-generalizing counterpart, the
    jumps and retraining, the embedding and its homology."""

    label_noise: float = _spec(0.4, lo=0.0, hi=1.0, doc="fraction of training labels replaced for the poor network")
    poor_epochs: int = _spec(30, lo=1, doc="training epochs of the poor network")
    jump_steps: list = _spec([0.25, 0.5, 0.75, 1.0], lo=0.0, lo_open=True, doc="jump lengths, filter-normalized units")
    jump_seeds: list = _spec([0, 1], lo=0, doc="direction seeds")
    retrain_epochs: int = _spec(4, lo=1, doc="retraining epochs after each jump")
    retrain_lr: float = _spec(0.01, lo=0.0, lo_open=True, doc="constant retraining learning rate")
    loss_samples: int = _spec(1000, lo=1, doc="training samples for the loss at every saved point")
    knn: int = _spec(5, lo=2, doc="neighbours in PHATE and in the homology graph")
    max_stack_mb: int = _spec(1024, lo=1, doc="project parameter vectors when their matrix is larger (MB)")
    min_acc_gap: float = _spec(0.0, lo=-100.0, hi=100.0,
                               doc="asserted: the well network's test accuracy exceeds the poor one's by more "
                                   "than this (points; -100: no check)")

    @property
    def n_points(self) -> int:
        """Weight vectors per network: the trained one and every retraining epoch of every jump."""
        return 1 + len(self.jump_steps) * len(self.jump_seeds) * (self.retrain_epochs + 1)

    def __post_init__(self) -> None:
        if self.knn + 2 > self.n_points:
            raise ProfileError(f"knn = {self.knn}; allowed: at most {self.n_points - 2} (the {self.n_points} "
                               "weight vectors per network, less 2)")

    def poor_config(self, trained_with: TrainConfig) -> TrainConfig:
        """The poorly-generalizing network's recipe: the well one's, for ``poor_epochs``, without
        weight decay and augmentation (it is trained on noisy labels)."""
        return dataclasses.replace(trained_with, epochs=self.poor_epochs, weight_decay=0.0, augment=False)

    def jump_config(self, trained_with: TrainConfig) -> JumpConfig:
        """The jumps of a network trained with ``trained_with``, retrained with its recipe."""
        return JumpConfig.from_training(trained_with, steps=self.jump_steps, seeds=self.jump_seeds,
                                        epochs=self.retrain_epochs, lr=self.retrain_lr)


@dataclass(frozen=True)
class ConnectivityParams:
    """Parameters of ``07_connectivity``: paths and simplexes between solutions, and the wedge model."""

    resnet_seeds: list = _spec([0, 1, 2], lo=0, doc="ResNet seeds (chapter 1's recipe): every pair, and the simplex")
    pinn_seeds: list = _spec([0, 1], lo=0, doc="PINN seeds at the low and the high beta: every pair")
    n_samples: int = _spec(2000, lo=0, doc="training samples paths are evaluated on (0: all)")
    bn_samples: int = _spec(2000, lo=0, doc="samples for BatchNorm statistics at each point (0: all)")
    points: int = _spec(11, lo=3, doc="evenly spaced t on every path")
    curve_steps: int = _spec(400, lo=0, doc="Bezier curve steps, ResNets (SGD, one t and one minibatch each)")
    curve_lr: float = _spec(0.05, lo=0.0, lo_open=True, doc="Bezier curve learning rate, ResNets")
    connector_steps: int = _spec(200, lo=0, doc="connector descent steps, ResNets")
    connector_lr: float = _spec(0.02, lo=0.0, lo_open=True, doc="connector learning rate, ResNets")
    pinn_steps: int = _spec(1000, lo=0, doc="curve and connector steps, PINNs (Adam)")
    pinn_lr: float = _spec(0.001, lo=0.0, lo_open=True, doc="curve and connector learning rate, PINNs")
    simplex_connectors: int = _spec(1, lo=1, doc="shared free vertices of the simplex")
    simplex_steps: int = _spec(400, lo=0, doc="simplex training steps")
    simplex_volume: float = _spec(0.0, lo=0.0, doc="weight of the simplex volume term (0: none)")
    structure_samples: int = _spec(16, lo=1, doc="uniform samples of the simplex in its report")
    cut_resolution: int = _spec(6, lo=1, doc="lattice steps per side of the cut through three solutions")
    wedge_dim: int = _spec(100, lo=2, doc="wedge model: dimension D")
    wedge_count: int = _spec(10, lo=1, doc="wedge model: number of wedges N")
    wedge_short: int = _spec(10, lo=1, doc="wedge model: short directions n per wedge")
    wedge_trials: int = _spec(3, lo=1, doc="wedge model: random subspaces per dimension")
    max_curve_ratio: float = _spec(0.0, lo=0.0, doc="asserted: the trained curves' mean loss barrier is at most "
                                                    "this fraction of the lines' (0: no check)")
    max_end_gap: float = _spec(0.0, lo=0.0, doc="asserted: statistics recomputed at the ends reproduce the networks' "
                                                "training error within this many points (0: no check)")

    def __post_init__(self) -> None:
        if len(set(self.resnet_seeds)) < 2 or len(set(self.pinn_seeds)) < 2:
            raise ProfileError(f"resnet_seeds = {self.resnet_seeds}, pinn_seeds = {self.pinn_seeds}; allowed: at "
                               "least two different seeds each (a pair)")
        if self.wedge_short >= self.wedge_dim:
            raise ProfileError(f"wedge_short = {self.wedge_short}; allowed: fewer than wedge_dim = {self.wedge_dim}")

    def curve_config(self, family: str, seed: int) -> CurveConfig:
        """The Bezier curve (one free bend) of a ``ResNet`` or ``PINN`` pair."""
        if family == "PINN":
            return CurveConfig(steps=self.pinn_steps, optimizer="adam", lr=self.pinn_lr, points=self.points, seed=seed)
        return CurveConfig(steps=self.curve_steps, lr=self.curve_lr, points=self.points, bn_samples=self.bn_samples,
                           seed=seed)

    def connector_config(self, family: str, seed: int) -> ConnectorConfig:
        """Fort & Jastrzebski's connector of a ``ResNet`` or ``PINN`` pair."""
        if family == "PINN":
            return ConnectorConfig(steps=self.pinn_steps, optimizer="adam", lr=self.pinn_lr, points=self.points,
                                   seed=seed)
        return ConnectorConfig(steps=self.connector_steps, lr=self.connector_lr, points=self.points,
                               bn_samples=self.bn_samples, seed=seed)

    def simplex_config(self, seed: int) -> SimplexConfig:
        """The star complex through the ResNet solutions."""
        return SimplexConfig(connectors=self.simplex_connectors, steps=self.simplex_steps, volume=self.simplex_volume,
                             lr=self.curve_lr, eval_samples=self.structure_samples, cut_resolution=self.cut_resolution,
                             bn_samples=self.bn_samples, seed=seed)


@dataclass(frozen=True)
class TaxonomyParams:
    """Parameters of ``08_taxonomy``: Yang et al. 2021's phase diagrams over width x batch size and
    width x label noise, swept on the profile's executor. The recipe keys are
    :class:`~lsutils.taxonomy.PhaseRecipe`'s."""

    widths: list = _spec([2, 4, 8, 16], lo=1, doc="base channels k of the ResNet (stages k, 2k, 4k)")
    batch_sizes: list = _spec([32, 128, 512], lo=1, doc="batch sizes (temperature: small is hot)")
    noise_levels: list = _spec([0.2, 0.4], lo=0.0, hi=1.0, doc="label noise of the second diagram (0 is shared)")
    noise_batch: int = _spec(128, lo=1, doc="the batch size of the label-noise diagram (one of batch_sizes)")
    seeds: list = _spec([0, 1], lo=0, doc="training seeds per cell (mc and CKA compare them)")
    n_train: int = _spec(4000, lo=0, doc="first n training samples of chapter 1's data (0: all)")
    n_test: int = _spec(0, lo=0, doc="first n test samples (0: all)")
    depth: int = same_as(PhaseRecipe, "depth")
    epochs: int = same_as(PhaseRecipe, "epochs")
    lr: float = same_as(PhaseRecipe, "lr")
    momentum: float = same_as(PhaseRecipe, "momentum")
    weight_decay: float = same_as(PhaseRecipe, "weight_decay")
    augment: bool = same_as(PhaseRecipe, "augment")
    hessian_samples: int = same_as(PhaseRecipe, "hessian_samples")
    lanczos_steps: int = same_as(PhaseRecipe, "lanczos_steps")
    lanczos_tol: float = same_as(PhaseRecipe, "lanczos_tol")
    trace_probes: int = same_as(PhaseRecipe, "trace_probes")
    curve_steps: int = same_as(PhaseRecipe, "curve_steps")
    curve_lr: float = same_as(PhaseRecipe, "curve_lr")
    curve_points: int = same_as(PhaseRecipe, "curve_points")
    path_samples: int = same_as(PhaseRecipe, "path_samples")
    cka_samples: int = same_as(PhaseRecipe, "cka_samples")
    mc_tolerance: float = _spec(2.0, lo=0.0, doc="poorly connected when mc < -this (training-error points)")
    sharp_at: float = _spec(0.0, lo=0.0, doc="sharp when the top eigenvalue is at least this (0: the geometric "
                                             "middle of the grid's range)")
    cka_split: float = _spec(0.0, lo=0.0, hi=1.0, doc="IV-B when CKA is at least this, else IV-A (0: the middle of "
                                                      "the grid's range)")
    min_acc_gain: float = _spec(0.0, lo=0.0, doc="asserted: the widest networks' test accuracy exceeds the "
                                                 "narrowest's by this many points (0: no check)")

    def __post_init__(self) -> None:
        if len(set(self.seeds)) < 2:
            raise ProfileError(f"seeds = {self.seeds}; allowed: at least two different seeds (mc and CKA compare them)")
        if self.noise_batch not in self.batch_sizes:
            raise ProfileError(f"noise_batch = {self.noise_batch}; allowed: one of batch_sizes {self.batch_sizes}")
        if (self.depth - 2) % 6:
            raise ProfileError(f"depth = {self.depth}; allowed: 6n + 2 (8, 14, 20, ...)")

    def recipe(self) -> PhaseRecipe:
        """What every cell shares."""
        return derive(PhaseRecipe, self)

    def batch_points(self) -> list[tuple[int, int, float]]:
        """The width x batch-size diagram's grid points (clean labels)."""
        return [(w, b, 0.0) for w in self.widths for b in self.batch_sizes]

    def noise_points(self) -> list[tuple[int, int, float]]:
        """The width x label-noise diagram's grid points (at ``noise_batch``; noise 0 shared)."""
        return [(w, self.noise_batch, float(p)) for w in self.widths for p in sorted({0.0, *self.noise_levels})]


@dataclass(frozen=True)
class TrainingGeometryParams:
    """Parameters of ``09_training_geometry``: Fort & Ganguli 2019's four properties on chapter 1's
    ResNets (one seed's trajectory), the Goldilocks sweep and the random logit-gradient model. The
    measurement keys are :class:`~lsutils.geometry.GeometryRecipe`'s; the ``gold_*`` keys are
    :class:`~lsutils.goldilocks.GoldilocksRecipe`'s; the ``model_*`` keys
    :class:`~lsutils.logit_model.LogitModel`'s."""

    run_seed: int = _spec(0, lo=0, doc="the seed of chapter 1's runs whose trajectories are measured")
    epoch_points: int = _spec(7, lo=0, doc="saved epochs measured, log-spaced from 0 to the last (0: every one)")
    samples: int = same_as(GeometryRecipe, "samples")
    batch_size: int = same_as(GeometryRecipe, "batch_size")
    top_k: int = same_as(GeometryRecipe, "top_k")
    spectrum_k: int = same_as(GeometryRecipe, "spectrum_k")
    tol: float = same_as(GeometryRecipe, "tol")
    max_steps: int = same_as(GeometryRecipe, "max_steps")
    trace_probes: int = same_as(GeometryRecipe, "trace_probes")
    minibatches: int = same_as(GeometryRecipe, "minibatches")
    pinn_top_k: int = _spec(20, lo=2, doc="top Hessian eigenpairs of the PINNs")
    radii: list = _spec([0.1, 1.0, 3.0], lo=0.0, lo_open=True, doc="initialization radii r (x the default init)")
    dims: list = _spec([16, 128, 1024], lo=1, doc="random subspace dimensions d (the full space is added)")
    gold_train: int = _spec(4000, lo=2, doc="first n training samples of chapter 1's data for the subspace runs")
    gold_depth: int = same_as(GoldilocksRecipe, "depth")
    gold_width: int = same_as(GoldilocksRecipe, "width")
    gold_steps: int = same_as(GoldilocksRecipe, "steps")
    gold_lr: float = same_as(GoldilocksRecipe, "lr")
    gold_curvature_dims: int = same_as(GoldilocksRecipe, "curvature_dims")
    accuracy_fraction: float = _spec(0.9, lo=0.0, lo_open=True, hi=1.0,
                                     doc="threshold dimension: the smallest d reaching this fraction of the "
                                         "full accuracy")
    model_features: int = same_as(LogitModel, "features")
    model_per_class: int = same_as(LogitModel, "per_class")
    model_separation: float = same_as(LogitModel, "separation")
    model_noise: float = same_as(LogitModel, "noise")
    model_logit_scale: float = same_as(LogitModel, "logit_scale")
    min_confinement: float = _spec(0.0, lo=0.0, hi=1.0, doc="asserted: the final full-batch gradient's fraction in "
                                                            "the top-C eigenspace is at least this (0: no check)")

    def __post_init__(self) -> None:
        if (self.gold_depth - 2) % 6:
            raise ProfileError(f"gold_depth = {self.gold_depth}; allowed: 6n + 2 (8, 14, 20, ...)")
        if self.spectrum_k < 2 or self.top_k < 2:
            raise ProfileError(f"top_k = {self.top_k}, spectrum_k = {self.spectrum_k}; allowed: at least 2")

    def recipe(self) -> GeometryRecipe:
        """How every epoch and spectrum is measured."""
        return derive(GeometryRecipe, self)

    def gold_recipe(self) -> GoldilocksRecipe:
        """The subspace runs' network, training and curvature."""
        return GoldilocksRecipe(depth=self.gold_depth, width=self.gold_width, steps=self.gold_steps, lr=self.gold_lr,
                                batch_size=self.batch_size, hessian_samples=self.samples,
                                curvature_dims=self.gold_curvature_dims)

    def logit_model(self, classes: int, seed: int, logit_scale: float | None = None) -> LogitModel:
        """The random model with ``classes`` classes (at ``logit_scale``, default the profile's)."""
        return LogitModel(classes=classes, features=self.model_features, per_class=self.model_per_class,
                          separation=self.model_separation, noise=self.model_noise, seed=seed,
                          logit_scale=self.model_logit_scale if logit_scale is None else logit_scale)

    def epochs(self, saved: int) -> list[int]:
        """The measured epochs of a run with ``saved`` epochs: every one (``epoch_points`` 0), else
        ``epoch_points`` log-spaced ones from 0 to ``saved`` (fewer where they coincide)."""
        if not self.epoch_points or self.epoch_points > saved:
            return list(range(saved + 1))
        inner = np.unique(np.round(np.geomspace(1, saved, self.epoch_points - 1)).astype(int)).tolist()
        return [0, *inner]


#: notebook stem -> dataclass of its parameters. A later chapter adds its own here.
NOTEBOOK_SCHEMAS: dict[str, type] = {
    "01_train_resnets": ResnetTrainParams,
    "02_train_pinns": PinnSweepParams,
    "03_hessian": HessianParams,
    "04_landscapes": LandscapeParams,
    "05_topology": TopologyParams,
    "06_jump_and_retrain": JumpRetrainParams,
    "07_connectivity": ConnectivityParams,
    "08_taxonomy": TaxonomyParams,
    "09_training_geometry": TrainingGeometryParams,
}


#: the notebooks that run sweeps and take the profile's ``executor`` as a parameter.
SWEEP_NOTEBOOKS = ("01_train_resnets", "02_train_pinns", "08_taxonomy", "09_training_geometry")


@dataclass(frozen=True)
class Profile:
    """A validated profile: global settings plus one parameter set per notebook.

    Attributes:
        name: ``smoke``, ``quick`` or ``full``.
        seed: the global seed; notebooks derive their run seeds from it.
        device: ``auto`` picks CUDA, then MPS, then the CPU.
        gpu_sized: whether this profile is meant for a GPU (a warning on CPU).
        executor: where sweeps run (:mod:`lsutils.sweep`): ``serial``, ``local:N``, a Dask
            scheduler's address or a scheduler file.
        description: one line shown by the pipeline.
        notebooks: notebook stem -> its validated parameters.
    """

    name: str
    seed: int = 0
    device: str = "auto"
    gpu_sized: bool = False
    description: str = ""
    notebooks: Mapping[str, Any] = field(default_factory=dict)
    executor: str = "serial"

    def section(self, stem: str) -> Any:
        """The validated parameters of notebook ``stem`` (its dataclass)."""
        if stem not in self.notebooks:
            raise ProfileError(f"unknown notebook {stem!r}; allowed: {', '.join(self.notebooks)}")
        return self.notebooks[stem]

    def notebook_params(self, stem: str) -> dict[str, Any]:
        """Everything papermill injects into notebook ``stem``.

        The global keys (``profile``, ``seed``, ``device``, ``gpu_sized``, and ``executor`` for
        the notebooks that run sweeps) come first, then the notebook's own section (empty for a
        notebook without one).
        """
        out: dict[str, Any] = {"profile": self.name, "seed": self.seed, "device": self.device,
                               "gpu_sized": self.gpu_sized}
        if stem in SWEEP_NOTEBOOKS:
            out["executor"] = self.executor
        section = self.notebooks.get(stem)
        if section is not None:
            out.update(dataclasses.asdict(section))
        return out


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: expected a mapping of keys, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ProfileError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(fields)}")
    missing = [k for k in fields if k not in raw]
    if missing:
        raise ProfileError(f"{where}: missing key {missing[0]!r}; every key must be given: {', '.join(fields)}")
    try:
        return cls(**{k: check_value(f"{where}.{k}", v, fields[k]) for k, v in raw.items()})
    except SettingError as err:
        raise ProfileError(str(err) if str(err).startswith(where) else f"{where}.{err}") from None


def section_from(stem: str, values: Mapping[str, Any]) -> Any:
    """The validated section of notebook ``stem`` from a mapping holding (at least) all of its
    keys, e.g. a notebook's parameters (``globals()``): what a reader edited takes effect."""
    if stem not in NOTEBOOK_SCHEMAS:
        raise ProfileError(f"unknown notebook {stem!r}; allowed: {', '.join(NOTEBOOK_SCHEMAS)}")
    keys = [f.name for f in dataclasses.fields(NOTEBOOK_SCHEMAS[stem])]
    return _build(NOTEBOOK_SCHEMAS[stem], {k: values[k] for k in keys if k in values}, stem)


_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _ProfileLoader(yaml.SafeLoader):
    """YAML 1.2 numbers (``1.0e6`` is a float, as YAML 1.1 forgets) and no duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ProfileError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_ProfileLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _estimate_bytes(stem: str, section: Any) -> dict[str, float]:
    """The largest allocations a section's settings imply, in bytes, by the key that drives
    each (what the budget check compares with ``memory_budget_gb``)."""
    s = section
    if stem == "01_train_resnets":
        return {"num_samples": s.num_samples * 40 * 8 * 8.0}  # MNIST-1D generation, float64 copies
    if stem == "02_train_pinns":
        return {"n_collocation": s.n_collocation * s.width * s.depth * 8 * 16.0}
    if stem == "04_landscapes":  # grid coordinates, values and their copies, 8 bytes each
        return {"resolution_2d": s.resolution_2d ** 2 * 8 * 8.0, "resolution_3d": s.resolution_3d ** 3 * 10 * 8.0,
                "interp_points": s.interp_points * 8 * 8.0}
    if stem == "05_topology":
        return {"compare_resolution": s.compare_resolution ** 2 * 8 * 16.0}
    if stem == "06_jump_and_retrain":
        return {"knn": s.knn * s.n_points * 8 * 8.0}
    if stem == "08_taxonomy":  # each cell's model and data live in one worker at a time
        return {"widths": max(s.widths) ** 2 * 16 * 9 * 4 * 8.0}
    if stem == "07_connectivity":  # the cut's points, each a copy of a network's weights (float32, ~1e6 at most)
        return {"cut_resolution": (s.cut_resolution + 1) * (s.cut_resolution + 2) / 2 * 4e6}
    return {}


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PB"


OVERRIDES_ENV = "LSUTILS_OVERRIDES"


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["notebooks.01_train_resnets.epochs=1", "seed=3"]`` as a mapping of dotted keys to values
    (each value read as YAML: ``[0, 1]``, ``1e-3``, ``true``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ProfileError(f"override {item!r}; allowed: KEY=VALUE, e.g. notebooks.01_train_resnets.epochs=1")
        out[key.strip()] = yaml.load(value, Loader=_ProfileLoader)
    return out


def active_overrides() -> dict[str, Any]:
    """The overrides in ``LSUTILS_OVERRIDES`` (a JSON object of dotted keys), as the pipeline
    hands them to every notebook it runs."""
    env = os.environ.get(OVERRIDES_ENV, "").strip()
    if not env:
        return {}
    try:
        out = json.loads(env)
    except json.JSONDecodeError as err:
        raise ProfileError(f"{OVERRIDES_ENV} is not a JSON object: {err}") from None
    if not isinstance(out, dict):
        raise ProfileError(f"{OVERRIDES_ENV} is not a JSON object of dotted keys: {env!r}")
    return out


def _apply(raw: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ProfileError(f"override {key!r}: no section {part!r} in the profile")
            node = node[part]
        if leaf not in node and parents:
            raise ProfileError(f"override {key!r}: unknown key {leaf!r}; allowed keys: {', '.join(node)}")
        node[leaf] = value


def load_profile(name: str, path: str | os.PathLike | None = None,
                 overrides: Mapping[str, Any] | None = None) -> Profile:
    """Read and validate a profile, with overrides applied before validation.

    Overrides scale a profile without copying it (a paper-scale profile at toy size for a
    test, one more seed for a reader): dotted keys such as
    ``notebooks.01_train_resnets.epochs``, from ``LSUTILS_OVERRIDES`` (a JSON object; the
    pipeline sets it for its notebooks, so every chapter sees the same profile) and then
    from ``overrides``. ``python -m lsutils run --profile full --set KEY=VALUE`` sets both.

    Args:
        name: the profile's name (``smoke``, ``quick``, ``full``, or any YAML
            file stem in the profiles folder).
        path: an explicit YAML file instead of ``profiles_dir()/<name>.yaml``.
        overrides: dotted key -> value, applied after those of the environment.

    Returns:
        The frozen :class:`Profile`.

    Raises:
        ProfileError: unknown profile, unreadable YAML, unknown key, or a value
            out of range; the message names the key and what it accepts.
    """
    file = Path(path) if path is not None else profiles_dir() / f"{name}.yaml"
    if not file.is_file():
        known = sorted(p.stem for p in profiles_dir().glob("*.yaml"))
        raise ProfileError(f"unknown profile {name!r}; allowed: {', '.join(known) or '(none found)'}")
    try:
        return _load(name, file, {**active_overrides(), **(overrides or {})})
    except SettingError as err:
        raise ProfileError(f"{file}: {err}") from None


def _load(name: str, file: Path, overrides: Mapping[str, Any]) -> Profile:
    try:
        raw = yaml.load(file.read_text(encoding="utf-8"), Loader=_ProfileLoader) or {}
    except UnicodeDecodeError as err:
        raise ProfileError(f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ProfileError(f"not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(raw, dict):
        raise ProfileError("expected a mapping at the top")
    _apply(raw, overrides)
    allowed = ("seed", "device", "gpu_sized", "description", "memory_budget_gb", "executor", "notebooks")
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ProfileError(f"unknown key {unknown[0]!r}; allowed keys: {', '.join(allowed)}")
    seed = check_scalar("seed", raw.get("seed", 0), int, {"lo": 0})
    device = raw.get("device", "auto")
    if device not in DEVICES:
        raise ProfileError(f"device = {device!r}; allowed: {', '.join(DEVICES)}")
    gpu_sized = check_scalar("gpu_sized", raw.get("gpu_sized", False), bool, {})
    executor = raw.get("executor", "serial")
    try:
        executor_kind(executor)
    except ValueError as err:
        raise ProfileError(str(err)) from None
    budget = check_scalar("memory_budget_gb", raw.get("memory_budget_gb", DEFAULT_BUDGET_GB), float,
                           {"lo": 0.0, "lo_open": True})
    sections = raw.get("notebooks")
    if not isinstance(sections, dict):
        raise ProfileError(f"notebooks: expected a mapping of notebook names to parameters, got {sections!r}")
    for stem in sections:
        if stem not in NOTEBOOK_SCHEMAS:
            raise ProfileError(f"unknown notebook {stem!r}; allowed: {', '.join(NOTEBOOK_SCHEMAS)}")
    notebooks = {}
    for stem, schema in NOTEBOOK_SCHEMAS.items():
        if stem not in sections:
            raise ProfileError(f"notebooks.{stem}: missing section; every notebook needs one "
                               f"({', '.join(NOTEBOOK_SCHEMAS)})")
        notebooks[stem] = section = _build(schema, sections[stem], f"notebooks.{stem}")
        for key, size in _estimate_bytes(stem, section).items():
            if size > budget * 2**30:
                raise ProfileError(f"notebooks.{stem}.{key} = {getattr(section, key)!r} needs about {_human(size)}, "
                                   f"over the memory budget of {budget:g} GB (memory_budget_gb)")
    return Profile(name=name, seed=seed, device=device, gpu_sized=gpu_sized,
                   description=str(raw.get("description", "")), notebooks=notebooks, executor=executor)
