"""What the chapters ask for, by meaning: runs, datasets, objectives, reports, landscapes.

Every chapter stands alone. A notebook opens a :class:`Catalog` for its profile and
asks it for *the trained ResNets*, *the PINNs*, *the objective of a run on n samples*,
*the curvature report of a model* or *chapter 4's landscapes*; it never builds a
file name. The catalog knows where each artifact lives
(``data/runs/<profile>/<stage>/...``) and, when one is missing, produces it with the
profile's settings for the stage that owns it, through the same train-or-load (or
compute-or-load) call the owning notebook makes: one line says what is being made,
and the training or evaluation shows its progress bar. So a reader can open chapter 5
alone on Colab, in an empty data folder, and it completes, writing the very artifacts
(same paths, same sidecars) that chapters 1-4 would have written.

A notebook passes its own parameters (``parameters=globals()``): its own stage then
uses them, validated like the profile, so a value a reader edits takes effect; the
stages upstream keep the profile's settings.

Example:
    >>> cat = Catalog("smoke", "cpu")
    >>> [s.skip for s in cat.resnet_specs().values()]
    [True, False]
    >>> cat.paths("hessian").parts[-3:]
    ('runs', 'smoke', 'hessian')
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from . import artifacts, pinn
from .config import Profile, ProfileError, load_profile, section_from
from .connections import Connection, SimplexRecord, connect_or_load, simplex_or_load
from .curvature import CurvatureReport, analyze_or_load, load_report
from .data import Dataset, load_dataset
from .directions import eigen_plane, pca_directions, random_direction
from .geometry import GeometryTask, TrainingGeometry, geometry_cells, term_confinement
from .goldilocks import GoldilocksTask, goldilocks_cells
from .landscape import Landscape, eigen_length, evaluate_grid, grid_axes, interpolate, load_landscape, to_vti
from .models import ResNetSpec
from .objectives import ClassifierObjective, Objective
from .sweep import executor_kind, is_finished, open_executor, run_sweep
from .taxonomy import ModelTask, PairTask, PhaseDiagrams, model_cells, pair_cells, phase_table
from .train import TrainRun, TrainTask, lr_at, run_dir_for, saved_epochs, train_or_load, trajectory
from .trajectories import JumpRun, jump_and_retrain

__all__ = ["Catalog", "TrainedModel", "SLICES"]

#: the summary file of each chapter that writes one, by stage.
SUMMARIES: dict[str, str] = {"topology": "summaries.json", "jump_retrain": "summary.json",
                             "connectivity": "summary.json", "taxonomy": "summary.json",
                             "training_geometry": "summary.json"}

#: chapter 4's landscapes of every model: (kind, dimensions).
SLICES: tuple[tuple[str, int], ...] = (("random", 2), ("hessian", 2), ("hessian", 3))


@dataclass
class TrainedModel:
    """A trained network of the book, whatever its family.

    Attributes:
        family: ``ResNet`` or ``PINN``.
        label: how figures and tables name it (``ResNet-20 skip``, ``PINN beta=30``).
        name: its artifacts' stem (``resnet20_skip_seed0``, ``pinn_beta30_seed0``).
        seed: its training seed.
        run: the :class:`~lsutils.train.TrainRun` or :class:`~lsutils.pinn.PinnRun`.
        spec: the ResNet's spec (``None`` for a PINN).
        beta: the PINN's convection coefficient (``None`` for a ResNet).
    """

    family: str
    label: str
    name: str
    seed: int
    run: TrainRun | pinn.PinnRun
    spec: ResNetSpec | None = None
    beta: float | None = None

    @property
    def performance(self) -> float:
        """Test accuracy in percent (ResNet) or relative L2 error (PINN)."""
        return 100 * self.run.test_acc if self.family == "ResNet" else self.run.rel_l2


class Catalog:
    """The artifacts of one profile, by meaning; missing upstream ones are produced.

    Args:
        profile: a profile name or a loaded :class:`~lsutils.config.Profile`.
        device: where models, data and objectives live.
        notebook: the stem of the notebook that asks (its own stage uses ``parameters``).
        parameters: that notebook's parameters (e.g. ``globals()``); the keys of its
            profile section and ``seed`` are read, validated like the profile.
        progress: progress bars on long work.
    """

    def __init__(self, profile: str | Profile, device: torch.device | str = "cpu", *,
                 notebook: str | None = None, parameters: Mapping[str, Any] | None = None,
                 progress: bool = True) -> None:
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        self.device = torch.device(device)
        self.notebook = notebook
        self.progress = progress
        self.seed = self.profile.seed
        #: where sweeps run: the profile's executor, or the asking notebook's ``executor`` parameter
        self.executor = self.profile.executor
        self._sections = dict(self.profile.notebooks)
        if parameters is not None:
            if notebook is None:
                raise ProfileError("parameters given without notebook; allowed: notebook=<its stem>")
            self._sections[notebook] = section_from(notebook, parameters)
            self.seed = int(parameters.get("seed", self.seed))
            self.executor = str(parameters.get("executor", self.executor))
            executor_kind(self.executor)  # a clear error naming executor and the allowed values
        self._announced: set[str] = set()

    # ------------------------------------------------------------------ places and settings
    @property
    def name(self) -> str:
        """The profile's name."""
        return self.profile.name

    def section(self, stem: str) -> Any:
        """The settings of notebook ``stem`` (the asking notebook's own, when it gave them)."""
        if stem not in self._sections:
            raise ProfileError(f"unknown notebook {stem!r}; allowed: {', '.join(self._sections)}")
        return self._sections[stem]

    def paths(self, stage: str) -> Path:
        """The folder of ``stage`` (one of :data:`lsutils.artifacts.STAGES`) for this profile."""
        return artifacts.stage_dir(self.name, stage)

    @property
    def sweep_device(self) -> torch.device | str:
        """Where sweep cells compute: this catalog's device in this machine's processes, the
        profile's request (``auto``) on a remote scheduler's workers, which resolve it themselves."""
        return self.profile.device if executor_kind(self.executor) in ("address", "file") else self.device

    def _announce(self, stage: str, what: str) -> None:
        owner = artifacts.STAGES[stage]
        if owner != self.notebook and stage not in self._announced:
            self._announced.add(stage)
            print(f"{what}: not found for profile {self.name}; producing it with {owner}'s settings")

    # ------------------------------------------------------------------ chapter 1: ResNets
    @functools.cached_property
    def dataset(self) -> Dataset:
        """The classification data of chapter 1 (MNIST-1D or CIFAR-10, as the profile says)."""
        s = self.section("01_train_resnets")
        return load_dataset(s.dataset, num_samples=s.num_samples, n_train=s.n_train or None,
                            n_test=s.n_test or None)

    def resnet_specs(self) -> dict[str, ResNetSpec]:
        """Label -> spec of the chapter's two ResNets (with and without skip connections)."""
        s, data = self.section("01_train_resnets"), self.dataset
        return {f"ResNet-{s.depth} {'skip' if skip else 'no skip'}":
                ResNetSpec(s.depth, s.width, skip, dim=data.dim, in_channels=data.in_channels,
                           num_classes=data.num_classes) for skip in (True, False)}

    def resnets(self, seeds: Sequence[int] | None = None) -> list[TrainedModel]:
        """Every trained ResNet of the profile (skip first, then no skip; seeds in order),
        trained or loaded with chapter 1's recipe; the missing ones are trained in one sweep on
        the profile's executor."""
        s = self.section("01_train_resnets")
        config, seeds = s.train_config(), list(s.seeds if seeds is None else seeds)
        specs = {spec.name: spec for spec in self.resnet_specs().values()}
        if not all(artifacts.exists(run_dir_for(self.name, n, seed) / "final.json") for n in specs for seed in seeds):
            self._announce("resnets", "trained ResNets")
        task = TrainTask(specs, self.dataset, config, self.name, progress=self.progress)
        run_sweep(task.cells(seeds), task, self.sweep_device, executor=self.executor, profile=self.name,
                  progress=self.progress, desc=f"ResNets ({self.executor})")
        out = []
        for label, spec in self.resnet_specs().items():
            for seed in seeds:
                run_dir = run_dir_for(self.name, spec.name, seed)
                run = train_or_load(spec, self.dataset, config, seed=seed, run_dir=run_dir, device=self.device,
                                    profile=self.name, progress=self.progress)
                out.append(TrainedModel("ResNet", label, f"{spec.name}_seed{seed}", seed, run, spec=spec))
        return out

    # ------------------------------------------------------------------ chapter 2: PINNs
    def pinns(self, betas: Sequence[float] | None = None, seeds: Sequence[int] | None = None) -> list[TrainedModel]:
        """Every trained PINN of the profile (betas outer, seeds inner), trained or loaded
        with chapter 2's settings."""
        s = self.section("02_train_pinns")
        config = s.train_config()
        betas, seeds = list(s.betas if betas is None else betas), list(s.seeds if seeds is None else seeds)
        if not all(artifacts.exists(pinn.run_path(self.name, beta, seed)) for beta in betas for seed in seeds):
            self._announce("pinns", "trained PINNs")
        task = pinn.PinnTask(config, self.name, progress=self.progress)
        run_sweep(task.cells(betas, seeds), task, self.sweep_device, executor=self.executor, profile=self.name,
                  progress=self.progress, desc=f"PINNs ({self.executor})")
        out = []
        for beta in betas:
            for seed in seeds:
                run = pinn.train_or_load(beta, seed, config, profile=self.name, device=self.device,
                                         progress=self.progress)
                out.append(TrainedModel("PINN", f"PINN beta={beta:g}", f"pinn_beta{beta:g}_seed{seed}", seed, run,
                                        beta=float(beta)))
        return out

    def objective(self, model: TrainedModel, n_samples: int = 0, chunk_size: int | None = None) -> Objective:
        """The loss of ``model`` over its parameters: a ResNet's on the first ``n_samples``
        training samples (0: all), a PINN's on its training points; ``chunk_size`` grid points
        per batched call."""
        chunk = {} if chunk_size is None else {"chunk_size": chunk_size}  # else each objective's default
        if model.family == "PINN":
            return model.run.objective(self.device, **chunk)
        data = self.dataset
        return ClassifierObjective(model.run.model, data.x_train[:n_samples or None], data.y_train[:n_samples or None],
                                   device=self.device, **chunk)

    # ------------------------------------------------------------------ chapter 3: curvature
    def curvature(self, model: TrainedModel) -> CurvatureReport:
        """The curvature report of ``model`` (top eigenpairs, trace, density), computed or
        loaded with chapter 3's settings."""
        s = self.section("03_hessian")
        path = self.paths("hessian") / f"{model.name}.pt"
        if model.family == "ResNet":
            obj = self.objective(model, s.n_samples)
            extra = {"n_samples": len(obj.x), "model": model.label}
        else:
            obj, extra = self.objective(model), {"beta": model.beta}
        if not artifacts.exists(path):
            self._announce("hessian", "curvature reports")
        return analyze_or_load(path, obj, s.curvature_config(self.seed), profile=self.name, extra=extra)

    def curvature_of(self, model: TrainedModel, objective: Objective) -> CurvatureReport:
        """The curvature report of ``model``, checked to belong to ``objective``'s weights
        (produced first when missing)."""
        path = self.paths("hessian") / f"{model.name}.pt"
        if not artifacts.exists(path):
            self.curvature(model)
        return load_report(path, objective)

    # ------------------------------------------------------------------ chapter 4: landscapes
    def landscape_models(self) -> list[TrainedModel]:
        """Chapter 4's models: both ResNets at the first seed, and the PINNs of the success and
        failure betas at the first seed."""
        r, p = self.section("01_train_resnets"), self.section("02_train_pinns")
        return (self.resnets(seeds=r.seeds[:1])
                + self.pinns(betas=[p.low_beta, p.high_beta], seeds=p.seeds[:1]))

    def landscape_objective(self, model: TrainedModel) -> Objective:
        """``model``'s objective with chapter 4's samples and chunk size."""
        s = self.section("04_landscapes")
        if model.family == "PINN":
            return self.objective(model, chunk_size=s.pinn_chunk)
        return self.objective(model, s.n_samples, chunk_size=s.resnet_chunk)

    def random_pair(self, objective: Objective) -> list[dict[str, torch.Tensor]]:
        """The two filter-normalized random directions of every random plane (seeds ``seed + 1``
        and ``seed + 2``)."""
        return [random_direction(objective.params, self.seed + 1), random_direction(objective.params, self.seed + 2)]

    def _slice(self, objective: Objective, model: TrainedModel, kind: str, axes: list[np.ndarray], span: float,
               path: Path, rise: float | None, owner_label: str, **kwargs: Any) -> Landscape:
        dims = len(axes)
        if kind == "random":
            dirs, units, c = self.random_pair(objective), "filter-normalized", None
        else:  # unit eigenvectors on the length at which the edge rises as the random plane's
            report = self.curvature_of(model, objective)
            eig = report.vectors[:dims]
            c = eigen_length(objective, eig, rise, span, top_eigenvalue=report.top_eigenvalue)
            dirs, units = eigen_plane(eig, c), f"unit eigenvectors x {c:.4g}"
        meta = {"model": owner_label, "kind": kind, "units": units}
        if c is not None:
            meta["unit_length"] = c
        return evaluate_grid(objective, dirs, axes, path=path, describe=[f"{kind} {i + 1}" for i in range(dims)],
                             profile=self.name, meta=meta, **kwargs)

    def landscape(self, model: TrainedModel, kind: str, dims: int) -> Landscape:
        """Chapter 4's ``kind`` (``random`` or ``hessian``) slice of ``model`` in ``dims``
        dimensions (a 2-D plane, or the 3-D Hessian block, also written as VTK image data)."""
        if (kind, dims) not in SLICES:
            raise ValueError(f"(kind, dims) = {(kind, dims)!r}; allowed: {', '.join(map(str, SLICES))}")
        s = self.section("04_landscapes")
        path = self.paths("landscapes") / f"{model.name}_{kind}{dims}d.npz"
        obj = self.landscape_objective(model)
        if self.notebook != "04_landscapes" and artifacts.exists(path):
            # a reader of chapter 4's slice: loaded as it is when it was made around these weights
            if artifacts.read_meta(path)["params"].get("key", {}).get("origin") == artifacts.digest(obj.params):
                return load_landscape(path)
        if not artifacts.exists(path):
            self._announce("landscapes", "landscapes")
        rise = None
        if kind == "hessian":
            plane = self.landscape(model, "random", 2)
            rise = float(np.nanmax(plane.loss)) - plane.at_origin()
        res = s.resolution_2d if dims == 2 else s.resolution_3d
        land = self._slice(obj, model, kind, grid_axes(res, s.span, dims=dims), s.span, path, rise, model.label,
                           progress=self.progress)
        if dims == 3:
            to_vti(land, path.with_suffix(".vti"))
        return land

    def landscapes(self) -> dict[tuple[str, str, int], Landscape]:
        """All of chapter 4's slices: ``(label, kind, dims) -> Landscape``."""
        return {(m.label, kind, dims): self.landscape(m, kind, dims)
                for m in self.landscape_models() for kind, dims in SLICES}

    def trajectory_plane(self, model: TrainedModel) -> tuple[Landscape, np.ndarray, np.ndarray]:
        """The plane of the first two principal components of ``model``'s training trajectory
        (a ResNet's), 20% beyond its extent: the landscape, each epoch's coordinates and the
        explained variance ratios."""
        s = self.section("04_landscapes")
        obj = self.landscape_objective(model)
        states = trajectory(model.run.run_dir)
        dirs, explained, coords = pca_directions([{k: st[k] for k in obj.params} for st in states], k=2)
        lim = 1.2 * np.abs(coords).max(axis=0)
        axes = [np.linspace(-lim[0], lim[0], s.resolution_2d), np.linspace(-lim[1], lim[1], s.resolution_2d)]
        land = evaluate_grid(obj, dirs, axes, path=self.paths("landscapes") / f"{model.name}_pca2d.npz",
                             describe=["PC 1", "PC 2"], profile=self.name, progress=self.progress,
                             meta={"model": model.label, "kind": "pca", "explained": explained.tolist()})
        return land, coords, explained

    def interpolation(self, model: TrainedModel) -> Landscape:
        """The loss on the line from ``model``'s initialization (0) to its trained weights (1),
        from -0.2 to 1.2."""
        s = self.section("04_landscapes")
        obj = self.landscape_objective(model)
        init = {k: v.to(self.device) for k, v in trajectory(model.run.run_dir)[0].items() if k in obj.params}
        return interpolate(obj, init, obj.params, np.linspace(-0.2, 1.2, s.interp_points),
                           path=self.paths("landscapes") / f"{model.name}_interp1d.npz", describe=["init -> trained"],
                           profile=self.name, progress=self.progress,
                           meta={"model": model.label, "kind": "interpolation"})

    # ------------------------------------------------------------------ chapter 5: comparison planes
    def comparison_planes(self, model: TrainedModel) -> dict[str, Landscape]:
        """Chapter 5's random and Hessian planes of ``model`` (loss only), at its resolution."""
        s = self.section("05_topology")
        chunk = s.pinn_chunk if model.family == "PINN" else s.resnet_chunk
        obj = self.objective(model, 0 if model.family == "PINN" else s.n_samples, chunk_size=chunk)
        axes, out, rise = grid_axes(s.compare_resolution, s.span, dims=2), {}, None
        for kind in ("random", "hessian"):
            path = self.paths("topology") / "planes" / f"{model.name}_{kind}2d.npz"
            out[kind] = land = self._slice(obj, model, kind, axes, s.span, path, rise, model.name, metrics=False,
                                           progress=False)
            rise = float(np.nanmax(land.loss)) - land.at_origin()
        return out

    # ------------------------------------------------------------------ chapter 6: jump and retrain
    def poor_resnet(self, well: TrainedModel, noisy: Dataset) -> TrainRun:
        """The poorly-generalizing counterpart of ``well``: trained on ``noisy`` labels with
        chapter 6's recipe (trained or loaded)."""
        s = self.section("06_jump_and_retrain")
        config = s.poor_config(self.section("01_train_resnets").train_config())
        return train_or_load(well.spec, noisy, config, seed=well.seed,
                             run_dir=self.paths("jump_retrain") / "poor" / "trained", device=self.device,
                             profile=self.name, progress=self.progress)

    def jumps(self, network: str, spec: ResNetSpec, data: Dataset, run: TrainRun, trained_with: Any) -> list[JumpRun]:
        """Chapter 6's jumps from ``run``'s weights, retrained with ``trained_with``'s recipe;
        ``network`` is ``well`` or ``poorly``."""
        if network not in ("well", "poorly"):
            raise ValueError(f"network = {network!r}; allowed: well, poorly")
        config = self.section("06_jump_and_retrain").jump_config(trained_with)
        return jump_and_retrain(spec, data, run.model.state_dict(), config,
                                root=self.paths("jump_retrain") / network / "jumps", device=self.device,
                                profile=self.name, progress=self.progress)

    # ------------------------------------------------------------------ chapter 7: connectivity
    def connection(self, a: TrainedModel, b: TrainedModel) -> Connection:
        """Chapter 7's line, curve and connector between ``a`` and ``b`` (same family and
        architecture), measured or loaded: trained on ``a``'s training objective (all training
        samples for a ResNet), evaluated on chapter 7's ``n_samples``."""
        if (a.family, a.label) != (b.family, b.label):
            raise ValueError(f"a is {a.label} and b is {b.label}; allowed: two networks of the same kind")
        s = self.section("07_connectivity")
        train, ev = self._connectivity_objectives(a)
        return connect_or_load(train, train.params, self._params(b, train),
                               s.curve_config(a.family, self.seed), s.connector_config(a.family, self.seed),
                               folder=self.paths("connectivity") / "pairs", name=f"{a.name}__{b.name}", evaluate_on=ev,
                               profile=self.name, progress=self.progress)

    def simplex(self, models: Sequence[TrainedModel]) -> SimplexRecord:
        """Chapter 7's star complex through ``models`` (ResNets of one kind), measured or loaded."""
        s = self.section("07_connectivity")
        train, ev = self._connectivity_objectives(models[0])
        return simplex_or_load(train, [self._params(m, train) for m in models], s.simplex_config(self.seed),
                               folder=self.paths("connectivity") / "simplex", name="__".join(m.name for m in models),
                               evaluate_on=ev, profile=self.name, progress=self.progress)

    def _connectivity_objectives(self, model: TrainedModel) -> tuple[Objective, Objective]:
        if model.family == "PINN":
            obj = self.objective(model)
            return obj, obj
        return self.objective(model), self.objective(model, self.section("07_connectivity").n_samples)

    def _params(self, model: TrainedModel, like: Objective) -> dict[str, torch.Tensor]:
        """``model``'s weights as a point of ``like``'s parameter space."""
        state = model.run.state if model.family == "PINN" else model.run.model.state_dict()
        return {k: state[k].detach().to(like.device) for k in like.params}

    # ------------------------------------------------------------------ chapter 8: taxonomy
    def taxonomy_data(self) -> Dataset:
        """Chapter 8's data: the first ``n_train`` / ``n_test`` samples of chapter 1's."""
        s = self.section("08_taxonomy")
        return self.dataset.subset(s.n_train or None, s.n_test or None)

    def phase_diagrams(self) -> PhaseDiagrams:
        """Chapter 8's two phase diagrams, every cell trained and measured (or loaded) in one sweep on
        the profile's executor, then every grid point's seeds connected and compared in a second."""
        s = self.section("08_taxonomy")
        data, recipe = self.taxonomy_data(), s.recipe()
        points = list(dict.fromkeys(s.batch_points() + s.noise_points()))
        models = ModelTask(data, recipe, self.name)
        cells, pairs = model_cells(points, s.seeds, recipe, data), pair_cells(points, s.seeds, recipe, data)
        pending = {c.name for c in cells + pairs if not is_finished(c, self.name)}
        if any(c.name in pending for c in cells):
            self._announce("taxonomy", "phase-diagram cells")
        # one cluster for both sweeps (its start and the workers' first imports cost seconds); none when all is done
        opened = open_executor(self.executor) if pending else contextlib.nullcontext()
        with opened as pool:
            where = self.executor if pool is None else pool
            first = run_sweep(cells, models, self.sweep_device, executor=where, profile=self.name,
                              progress=self.progress, raise_errors=False,
                              desc=f"phase-diagram models ({self.executor})")
            second = run_sweep(pairs, PairTask(models), self.sweep_device, executor=where, profile=self.name,
                               progress=self.progress, raise_errors=False, desc=f"seed pairs ({self.executor})")
        return PhaseDiagrams(batch=phase_table(s.batch_points(), first.metrics, second.metrics, s.seeds),
                             noise=phase_table(s.noise_points(), first.metrics, second.metrics, s.seeds),
                             failures={**first.failures, **second.failures}, seconds=first.seconds + second.seconds,
                             ran=first.ran + second.ran)

    # ------------------------------------------------------------------ chapter 9: training geometry
    def training_geometry(self) -> TrainingGeometry:
        """Chapter 9's measurements: the geometry of chapter 1's two ResNets (seed ``run_seed``) at
        the measured saved epochs and their final H and G spectra in both BatchNorm modes, then the
        Goldilocks subspace runs, in one cluster of the profile's executor (measured or loaded)."""
        s = self.section("09_training_geometry")
        r = self.section("01_train_resnets")
        models = self.resnets(seeds=[s.run_seed])  # trained first (a sweep of their own) when missing
        specs = {m.spec.name: m.spec for m in models}
        final = saved_epochs(models[0].run.run_dir)
        epochs = s.epochs(final)
        recipe, gold = s.recipe(), s.gold_recipe()
        gold_data = self.dataset.subset(s.gold_train, None)
        cells = geometry_cells([(n, s.run_seed) for n in specs], epochs, final, recipe, self.dataset, self.name)
        subspace = goldilocks_cells(s.radii, s.dims, gold, gold_data, self.seed)
        pending = [c for c in cells + subspace if not is_finished(c, self.name)]
        if pending:
            self._announce("training_geometry", "training-geometry cells")
        opened = open_executor(self.executor) if pending else contextlib.nullcontext()
        with opened as pool:
            where = self.executor if pool is None else pool
            first = run_sweep(cells, GeometryTask(specs, self.dataset, recipe, self.name), self.sweep_device,
                              executor=where, profile=self.name, progress=self.progress, raise_errors=False,
                              desc=f"epochs and spectra ({self.executor})")
            second = run_sweep(subspace, GoldilocksTask(gold_data, gold), self.sweep_device, executor=where,
                               profile=self.name, progress=self.progress, raise_errors=False,
                               desc=f"random subspaces ({self.executor})")
        config = r.train_config()
        label = {m.spec.name: m.label for m in models}
        out_epochs: dict[str, list[dict[str, Any]]] = {m.label: [] for m in models}
        spectra: dict[tuple[str, str, str], dict[str, Any]] = {}
        for c in cells:
            m = first.metrics.get(c.name)
            if m is None:
                continue
            p = c.params
            if p["kind"] == "epoch":
                lr = lr_at(min(p["epoch"], config.epochs - 1), config)
                out_epochs[label[p["model"]]].append({"epoch": p["epoch"], "lr": lr, **m})
            else:
                spectra[(label[p["model"]], p["operator"], p["mode"])] = m
        rows = [{"skip": c.params["skip"], "radius": c.params["radius"], "dim": c.params["dim"],
                 **second.metrics[c.name]} for c in subspace if c.name in second.metrics]
        return TrainingGeometry(epochs=out_epochs, spectra=spectra, goldilocks=rows,
                                num_classes=self.dataset.num_classes, momentum=config.momentum,
                                failures={**first.failures, **second.failures},
                                seconds=first.seconds + second.seconds, ran=first.ran + second.ran)

    def pinn_geometry(self) -> dict[str, dict[str, Any]]:
        """The PINNs' answer to the outlier count: for the success and failure betas (first seed),
        the top Hessian eigenvalues and the confinement of each loss term's gradient."""
        s, p = self.section("09_training_geometry"), self.section("02_train_pinns")
        return {m.label: term_confinement(self.objective(m), k=s.pinn_top_k, tol=s.tol, max_steps=s.max_steps * 2,
                                          seed=self.seed)
                for m in self.pinns(betas=[p.low_beta, p.high_beta], seeds=p.seeds[:1])}

    # ------------------------------------------------------------------ summaries
    def save_summary(self, stage: str, obj: Any, *, params: dict[str, Any]) -> Path:
        """Write a chapter's summary (what readers and later chapters load) for ``stage``."""
        if stage not in SUMMARIES:
            raise ValueError(f"stage = {stage!r}; allowed: {', '.join(SUMMARIES)}")
        return artifacts.save_json(self.paths(stage) / SUMMARIES[stage], obj, params=params, seed=self.seed,
                                   profile=self.name)
