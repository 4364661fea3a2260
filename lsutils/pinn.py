r"""Physics-informed networks on the 1-D convection equation.

The problem of Krishnapriyan et al. 2021 (*Characterizing possible failure modes
in physics-informed neural networks*), used by Xie et al. 2024:

.. math::

    u_t + \beta u_x = 0, \quad x \in [0, 2\pi),\ t \in [0, 1], \qquad
    u(x, 0) = \sin x, \qquad u(0, t) = u(2\pi, t),

with exact solution :math:`u(x, t) = \sin(x - \beta t)`. A 4x50 tanh MLP
:math:`u_\theta(x, t)` is trained on

.. math::

    L(\theta) = \underbrace{\tfrac{1}{N_f}\sum (\partial_t u_\theta + \beta \partial_x u_\theta)^2}_{\text{residual}}
      + \underbrace{\tfrac{1}{N_0}\sum (u_\theta(x, 0) - \sin x)^2}_{\text{initial}}
      + \underbrace{\tfrac{1}{N_b}\sum (u_\theta(0, t) - u_\theta(2\pi, t))^2}_{\text{boundary}}

with Adam, then L-BFGS (strong Wolfe line search). The residual is the
directional derivative of :math:`u_\theta` along :math:`(\beta, 1)` in
:math:`(x, t)`: for :class:`PinnMLP` the tangent is carried through the layers with
the activations (plain operations), for any other network by ``torch.func.jvp``;
both compose with reverse mode (training, Hessians) and with ``vmap`` over
parameters (landscapes).
Quality is the relative L2 error on the 256x100 grid; the paper finds about 1e-2
at beta = 1 and failure (error near 1) for beta >= 30.

The problem and its exact solution live in :mod:`lsutils.convection`, the network in
:mod:`lsutils.models` (:class:`~lsutils.models.PinnMLP`) and the loss in
:mod:`lsutils.objectives` (:class:`~lsutils.objectives.PinnObjective`); this module trains.

Example:
    >>> cfg = PinnTrainConfig(width=8, depth=1, n_collocation=32, n_initial=8, n_boundary=4,
    ...                       adam_steps=20, adam_lr=0.01, lbfgs_steps=5)
    >>> run = train_pinn(1.0, 0, cfg, progress=False)
    >>> run.history["loss"][-1] < run.history["loss"][0]
    True
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import artifacts
from .convection import ConvectionProblem, PinnPoints, relative_l2_error
from .models import PinnMLP
from .objectives import Params, PinnObjective
from .repro import progress_bar
from .sweep import Cell
from .settings import check, setting
from .train import check_finite

__all__ = ["ConvectionProblem", "PinnPoints", "PinnMLP", "PinnObjective", "PinnTrainConfig",
           "PinnRun", "PinnTask", "summary_table", "relative_l2_error", "train_pinn", "train_or_load", "run_path",
           "load_run"]


@dataclass(frozen=True)
class PinnTrainConfig:
    """How one PINN is built and trained (Adam, then L-BFGS with strong Wolfe)."""

    width: int = setting(50, lo=1, doc="hidden width of the tanh MLP")
    depth: int = setting(4, lo=1, doc="hidden layers of the tanh MLP")
    n_collocation: int = setting(1000, lo=1, doc="interior collocation points")
    n_initial: int = setting(256, lo=1, doc="points on u(x, 0) = sin x")
    n_boundary: int = setting(100, lo=1, doc="time points on the periodic boundary")
    adam_steps: int = setting(1000, lo=0, doc="Adam steps before L-BFGS")
    adam_lr: float = setting(1e-3, lo=0.0, lo_open=True, doc="Adam learning rate")
    lbfgs_steps: int = setting(500, lo=0, doc="L-BFGS iterations (strong Wolfe)")
    lbfgs_history: int = setting(50, lo=1, doc="L-BFGS history size")
    log_every: int = setting(10, lo=1, doc="Adam steps between history entries")

    def __post_init__(self) -> None:
        check(self)


@dataclass
class PinnRun:
    """A trained PINN: its weights, its loss history and its final metrics."""

    beta: float
    seed: int
    config: PinnTrainConfig
    state: dict[str, Tensor]
    history: dict[str, list] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    loaded: bool = False

    @property
    def rel_l2(self) -> float:
        return self.metrics["rel_l2"]

    def model(self) -> PinnMLP:
        """A fresh :class:`PinnMLP` carrying the trained weights."""
        m = PinnMLP(self.config.width, self.config.depth)
        m.load_state_dict(self.state)
        return m

    def objective(self, device: torch.device | str = "cpu", chunk_size: int | None = 64) -> PinnObjective:
        """The training objective at the trained weights (same points, same seed), evaluating
        ``chunk_size`` parameter points per batched call."""
        problem = ConvectionProblem(self.beta)
        c = self.config
        pts = problem.sample(c.n_collocation, c.n_initial, c.n_boundary, self.seed)
        return PinnObjective(self.model(), problem, pts, device, chunk_size=chunk_size)


def train_pinn(beta: float, seed: int, config: PinnTrainConfig,
               device: torch.device | str = "cpu", progress: bool = True) -> PinnRun:
    """Train one PINN from scratch, deterministically for a given seed and device.

    The history holds, every ``log_every`` steps of Adam and every L-BFGS
    iteration, the step, phase and the three loss terms.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    model = PinnMLP(config.width, config.depth)
    problem = ConvectionProblem(float(beta))
    points = problem.sample(config.n_collocation, config.n_initial, config.n_boundary, seed)
    obj = PinnObjective(model, problem, points, device)
    params: Params = dict(obj.model.named_parameters())
    history: dict[str, list] = {"step": [], "phase": [], "loss": [], "residual": [],
                                "initial": [], "boundary": []}

    def log(step: int, phase: str, terms: dict[str, Tensor]) -> float:
        vals = {k: float(v.detach()) for k, v in terms.items()}
        total = sum(vals.values())
        for k, v in (("step", step), ("phase", phase), ("loss", total), *vals.items()):
            history[k].append(v)
        return total

    start = time.perf_counter()
    name = f"PINN beta={beta:g} seed={seed}"
    total_steps = config.adam_steps + config.lbfgs_steps
    bar = progress_bar(total=total_steps, desc=name, enabled=progress,
                       leave=False)
    adam = torch.optim.Adam(params.values(), lr=config.adam_lr)
    for step in range(config.adam_steps):
        adam.zero_grad(set_to_none=True)
        terms = obj.terms(params)
        loss = terms["residual"] + terms["initial"] + terms["boundary"]
        check_finite(name, f"Adam step {step}", float(loss.detach()),
                     hint=f"the Adam learning rate ({config.adam_lr:g}) is likely too large")
        loss.backward()
        adam.step()
        if step % config.log_every == 0:
            bar.set_postfix(loss=f"{log(step, 'adam', terms):.2e}")
        bar.update(1)

    if config.lbfgs_steps:
        lbfgs = torch.optim.LBFGS(params.values(), lr=1.0, max_iter=1, max_eval=25,
                                  history_size=config.lbfgs_history,
                                  line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            lbfgs.zero_grad(set_to_none=True)
            val = obj.loss(params)
            val.backward()
            return val

        for it in range(config.lbfgs_steps):
            lbfgs.step(closure)
            with torch.no_grad():
                terms = obj.terms({k: v.detach() for k, v in params.items()})
            total = log(config.adam_steps + it, "lbfgs", terms)
            bar.update(1)
            check_finite(name, f"L-BFGS iteration {it}", total, obj.model,
                         hint="the line search left the finite range (an unstable Adam phase before it?)")
            state = lbfgs.state[lbfgs.param_groups[0]["params"][0]]
            converged = state.get("n_iter", 0) <= it  # no step taken: tolerances met
            if converged:
                break
            if it % config.log_every == 0:
                bar.set_postfix(loss=f"{total:.2e}")
    bar.close()
    obj.params = {k: v.detach().clone() for k, v in params.items()}
    return PinnRun(beta=float(beta), seed=seed, config=config, state=obj.state(),
                   history=history, metrics=obj.metrics(), seconds=time.perf_counter() - start)


def run_path(profile: str, beta: float, seed: int) -> Path:
    """``data/runs/<profile>/pinns/beta<beta>_seed<seed>.pt``."""
    return artifacts.stage_dir(profile, "pinns") / f"beta{beta:g}_seed{seed}.pt"


def load_run(profile: str, beta: float, seed: int) -> PinnRun:
    """Load a trained PINN written by ``02_train_pinns`` (a clear error if missing)."""
    path = run_path(profile, beta, seed)
    blob = artifacts.load_torch(path)
    return PinnRun(beta=blob["beta"], seed=blob["seed"], config=PinnTrainConfig(**blob["config"]),
                   state=blob["state"], history=blob["history"], metrics=blob["metrics"],
                   seconds=blob["seconds"], loaded=True)


def train_or_load(beta: float, seed: int, config: PinnTrainConfig, *, profile: str,
                  device: torch.device | str = "cpu", progress: bool = True) -> PinnRun:
    """Load the finished run for ``(profile, beta, seed)`` if its configuration matches,
    else train it and save it atomically.

    Returns:
        The run; ``run.loaded`` says whether it was loaded (``True``) or trained.
    """
    path = run_path(profile, beta, seed)
    wanted = dataclasses.asdict(config)
    key = {"beta": float(beta), "seed": seed, "config": wanted}
    if artifacts.matches(path, key):
        return load_run(profile, beta, seed)
    run = train_pinn(beta, seed, config, device, progress)
    blob: dict[str, Any] = {"beta": run.beta, "seed": run.seed, "config": wanted,
                            "state": run.state, "history": run.history,
                            "metrics": run.metrics, "seconds": run.seconds}
    artifacts.save_torch(path, blob, params=key, seed=seed,
                         profile=profile, extra={"metrics": run.metrics, "seconds": run.seconds,
                                                 "device": str(device)})
    return run


@dataclass(frozen=True)
class PinnTask:
    """A sweep task (:func:`lsutils.sweep.run_sweep`): train or load the PINN of one (beta, seed)
    cell with ``config``; the cell's parameters are the run's key."""

    config: PinnTrainConfig
    profile: str
    progress: bool = False

    def cells(self, betas: Any, seeds: Any) -> list[Cell]:
        """One cell per (beta, seed), betas outer."""
        return [Cell("pinns", f"beta{beta:g}_seed{seed}",
                     {"beta": float(beta), "seed": seed, "config": dataclasses.asdict(self.config)})
                for beta in betas for seed in seeds]

    def __call__(self, cell: Cell, device: torch.device) -> dict[str, float]:
        run = train_or_load(cell.params["beta"], int(cell.params["seed"]), self.config, profile=self.profile,
                            device=device, progress=self.progress)
        return {"rel_l2": run.rel_l2, "loss": run.history["loss"][-1]}


def summary_table(runs: list[PinnRun]) -> list[dict[str, Any]]:
    """One row per beta: mean/min/max relative L2 error over seeds, seconds, and the
    published expectation (about 1e-2 at beta = 1; failure, error near 1, for beta >= 30)."""
    rows = []
    for beta in sorted({r.beta for r in runs}):
        errs = np.array([r.rel_l2 for r in runs if r.beta == beta])
        secs = np.array([r.seconds for r in runs if r.beta == beta])
        published = "~1e-2" if beta <= 1 else ("fails (~1)" if beta >= 30 else "rises with beta")
        rows.append({"beta": beta, "seeds": len(errs), "rel_l2_mean": float(errs.mean()),
                     "rel_l2_min": float(errs.min()), "rel_l2_max": float(errs.max()),
                     "seconds_mean": float(secs.mean()), "published": published})
    return rows
