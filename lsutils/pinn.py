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

Example:
    >>> cfg = PinnTrainConfig(adam_steps=200, lbfgs_steps=100)
    >>> run = train_or_load(1.0, 0, cfg, device="cpu", profile="smoke")
    >>> run.rel_l2 < 0.1
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import jvp

from . import artifacts
from .objectives import Objective, Params
from .repro import progress_bar
from .train import check_finite

__all__ = ["ConvectionProblem", "PinnPoints", "PinnMLP", "PinnObjective", "PinnTrainConfig",
           "PinnRun", "summary_table", "relative_l2_error", "train_pinn", "train_or_load", "run_path", "load_run"]

TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class ConvectionProblem:
    """The periodic convection problem ``u_t + beta u_x = 0``, ``u(x, 0) = sin x``.

    Attributes:
        beta: convection coefficient (>= 0).
        nx: evaluation grid points in x, on ``[0, 2 pi)`` (endpoint excluded).
        nt: evaluation grid points in t, on ``[0, 1]`` (both ends included).
    """

    beta: float
    nx: int = 256
    nt: int = 100

    def __post_init__(self) -> None:
        if not (isinstance(self.beta, (int, float)) and math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta = {self.beta!r}; allowed: a finite number >= 0")
        if self.nx < 2 or self.nt < 2:
            raise ValueError(f"nx = {self.nx}, nt = {self.nt}; allowed: integers >= 2")

    def exact(self, x: Tensor, t: Tensor) -> Tensor:
        """The exact solution ``sin(x - beta t)``."""
        return torch.sin(x - self.beta * t)

    def grid(self, device: torch.device | str = "cpu",
             dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor, Tensor]:
        """The evaluation grid: ``x`` [nx], ``t`` [nt] and points ``[nt * nx, 2]`` (t-major)."""
        x = torch.linspace(0.0, TWO_PI, self.nx + 1, device=device, dtype=dtype)[:-1]
        t = torch.linspace(0.0, 1.0, self.nt, device=device, dtype=dtype)
        tt, xx = torch.meshgrid(t, x, indexing="ij")
        return x, t, torch.stack([xx.reshape(-1), tt.reshape(-1)], dim=1)

    def exact_field(self, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> Tensor:
        """The exact solution on the grid, shape ``[nt, nx]``."""
        _, _, pts = self.grid(device, dtype)
        return self.exact(pts[:, 0], pts[:, 1]).reshape(self.nt, self.nx)

    def sample(self, n_collocation: int, n_initial: int, n_boundary: int, seed: int,
               device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> "PinnPoints":
        """Training points: uniform random collocation points (seeded), evenly spaced
        initial points on ``[0, 2 pi)`` and boundary times on ``[0, 1]``."""
        for name, n in (("n_collocation", n_collocation), ("n_initial", n_initial),
                        ("n_boundary", n_boundary)):
            if n < 1:
                raise ValueError(f"{name} = {n}; allowed: integers >= 1")
        g = torch.Generator().manual_seed(seed)
        u = torch.rand(n_collocation, 2, generator=g, dtype=torch.float64)
        interior = torch.stack([u[:, 0] * TWO_PI, u[:, 1]], dim=1)
        x0 = torch.linspace(0.0, TWO_PI, n_initial + 1, dtype=torch.float64)[:-1]
        initial = torch.stack([x0, torch.zeros_like(x0)], dim=1)
        tb = torch.linspace(0.0, 1.0, n_boundary, dtype=torch.float64)
        left = torch.stack([torch.zeros_like(tb), tb], dim=1)
        right = torch.stack([torch.full_like(tb, TWO_PI), tb], dim=1)
        cast = dict(device=device, dtype=dtype)
        return PinnPoints(interior.to(**cast), initial.to(**cast), torch.sin(x0).to(**cast),
                          left.to(**cast), right.to(**cast))


@dataclass
class PinnPoints:
    """Fixed training points: ``[N, 2]`` arrays of ``(x, t)``."""

    interior: Tensor
    initial: Tensor
    initial_values: Tensor
    boundary_left: Tensor
    boundary_right: Tensor


class PinnMLP(nn.Module):
    """The tanh MLP ``(x, t) -> u``: ``depth`` hidden layers of ``width`` units.

    Xavier-normal weights and zero biases. Input ``[N, 2]``, output ``[N]``.
    """

    def __init__(self, width: int = 50, depth: int = 4) -> None:
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width = {width}, depth = {depth}; allowed: integers >= 1")
        sizes = [2] + [width] * depth + [1]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            lin = nn.Linear(a, b)
            nn.init.xavier_normal_(lin.weight)
            nn.init.zeros_(lin.bias)
            layers.append(lin)
            if i < len(sizes) - 2:
                layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, xt: Tensor, tangent: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        r"""``u(xt)``, or with ``tangent`` also the directional derivative ``du = J_u(xt) tangent``.

        ``tangent`` is ``[N, 2]``, or ``[2]`` for the same direction at every point (then
        the first layer's tangent is one row, broadcast). The function is ``self.net``'s,
        computed in sigmoid form: with :math:`\tanh(z) = 2\sigma(2z) - 1`, each layer
        :math:`z' = W \tanh(z) + b` becomes :math:`2z' = 4W\sigma(2z) + 2(b - W\mathbf{1})`,
        so a hidden layer costs one ``sigmoid`` and the rescaling moves into the (small)
        weights; on the CPU builds of torch measured here ``tanh`` is 3.5x slower than
        ``sigmoid``, and the batched PINN loss 1.3x faster this way. The tangent is carried
        through the layers by hand (:math:`d\sigma = \sigma(1 - \sigma)\,d(2z)`): plain
        operations, so reverse mode and ``vmap`` apply to it as to the forward pass,
        without forward-mode AD's overhead.
        """
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        first = linears[0]
        z = F.linear(xt, 2 * first.weight, 2 * first.bias)  # 2 z_1
        dz = None if tangent is None else tangent @ (2 * first.weight).T
        for i, lin in enumerate(linears[1:], start=2):
            s = torch.sigmoid(z)  # tanh(z_k) = 2 s - 1
            scale = 2.0 if i == len(linears) else 4.0  # the output layer is not doubled
            weight = scale * lin.weight
            z = F.linear(s, weight, scale / 2 * (lin.bias - lin.weight.sum(1)))
            if dz is not None:
                q = dz * s
                dz = torch.addcmul(q, q, s, value=-1) @ weight.T  # s (1 - s) d(2z), then the layer
        u = z.squeeze(-1)
        if dz is None:
            return u
        return u, dz.expand_as(z).squeeze(-1)


def relative_l2_error(pred: Tensor, exact: Tensor) -> Tensor:
    """``||pred - exact||_2 / ||exact||_2`` over all entries."""
    if pred.shape != exact.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but exact has {tuple(exact.shape)}")
    return torch.linalg.vector_norm(pred - exact) / torch.linalg.vector_norm(exact)


class PinnObjective(Objective):
    """The PINN loss as an objective over parameters (see :mod:`lsutils.objectives`).

    Args:
        model: a :class:`PinnMLP` (or any module ``[N, 2] -> [N]``).
        problem: the convection problem (its ``beta``).
        points: the fixed training points.
        device: where points and parameters live.

    ``metrics`` adds the relative L2 error against the exact solution on the
    problem's grid and the three loss terms.
    """

    def __init__(self, model: nn.Module, problem: ConvectionProblem, points: PinnPoints,
                 device: torch.device | str = "cpu", chunk_size: int | None = 64) -> None:
        super().__init__(model, device, chunk_size)
        self.problem = problem
        dtype = next(iter(self.params.values())).dtype
        self.points = PinnPoints(*(getattr(points, f.name).to(self.device, dtype)
                                   for f in dataclasses.fields(PinnPoints)))
        # initial and boundary points go through the network in one call
        self._conditions = torch.cat([self.points.initial, self.points.boundary_left,
                                      self.points.boundary_right])
        self._splits = [len(self.points.initial), len(self.points.boundary_left),
                        len(self.points.boundary_right)]
        direction = torch.tensor([problem.beta, 1.0], device=self.device, dtype=dtype)
        self._direction = direction  # u_t + beta u_x is the derivative along (beta, 1)
        self._tangent = direction.expand_as(self.points.interior)
        self._grid = problem.grid(self.device, dtype)[2]
        self._exact = problem.exact_field(self.device, dtype)

    def _data(self) -> Any:
        return {"problem": dataclasses.asdict(self.problem),
                "points": {f.name: getattr(self.points, f.name) for f in dataclasses.fields(self.points)}}

    def terms(self, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The three loss terms ``residual``, ``initial``, ``boundary``."""
        u = lambda xt: self.forward(params, xt)  # noqa: E731
        if isinstance(self.model, PinnMLP):  # the tangent carried through the layers by hand
            _, directional = self.forward(params, self.points.interior, self._direction)
        else:
            _, directional = jvp(u, (self.points.interior,), (self._tangent,))
        u0, left, right = u(self._conditions).split(self._splits)  # directional: u_t + beta u_x
        return {
            "residual": directional.pow(2).mean(),
            "initial": (u0 - self.points.initial_values).pow(2).mean(),
            "boundary": (left - right).pow(2).mean(),
        }

    def loss(self, params: Mapping[str, Tensor]) -> Tensor:
        t = self.terms(params)
        return t["residual"] + t["initial"] + t["boundary"]

    def evaluate(self, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        t = self.terms(params)
        field = self.forward(params, self._grid).reshape(self.problem.nt, self.problem.nx)
        return {"loss": t["residual"] + t["initial"] + t["boundary"],
                "rel_l2": relative_l2_error(field, self._exact)}

    def predict(self, params: Mapping[str, Tensor] | None = None) -> Tensor:
        """The network's field on the grid, ``[nt, nx]``."""
        with torch.no_grad():
            out = self.forward(self.params if params is None else params, self._grid)
        return out.reshape(self.problem.nt, self.problem.nx)

    def metrics(self, params: Mapping[str, Tensor] | None = None) -> dict[str, float]:
        params = self.params if params is None else params
        terms = {k: float(v) for k, v in self.terms({k: v.detach() for k, v in params.items()}).items()}
        return {"loss": sum(terms.values()), **terms,
                "rel_l2": float(relative_l2_error(self.predict(params), self._exact))}


@dataclass(frozen=True)
class PinnTrainConfig:
    """How one PINN is built and trained (Adam, then L-BFGS with strong Wolfe)."""

    width: int = 50
    depth: int = 4
    n_collocation: int = 1000
    n_initial: int = 256
    n_boundary: int = 100
    adam_steps: int = 1000
    adam_lr: float = 1e-3
    lbfgs_steps: int = 500
    lbfgs_history: int = 50
    log_every: int = 10

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            lo = 0 if f.name in ("adam_steps", "lbfgs_steps") else 1
            if f.name == "adam_lr":
                if not (v > 0 and math.isfinite(v)):
                    raise ValueError(f"adam_lr = {v}; allowed: a finite number > 0")
            elif not isinstance(v, int) or v < lo:
                raise ValueError(f"{f.name} = {v!r}; allowed: integers >= {lo}")


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

    @property
    def rel_l2(self) -> float:
        return self.metrics["rel_l2"]

    def model(self) -> PinnMLP:
        """A fresh :class:`PinnMLP` carrying the trained weights."""
        m = PinnMLP(self.config.width, self.config.depth)
        m.load_state_dict(self.state)
        return m

    def objective(self, device: torch.device | str = "cpu") -> PinnObjective:
        """The training objective at the trained weights (same points, same seed)."""
        problem = ConvectionProblem(self.beta)
        c = self.config
        pts = problem.sample(c.n_collocation, c.n_initial, c.n_boundary, self.seed)
        return PinnObjective(self.model(), problem, pts, device)


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
            state = lbfgs.state[lbfgs._params[0]]
            converged = state.get("n_iter", 0) <= it  # no step taken: tolerances met
            if converged:
                break
            if it % config.log_every == 0:
                bar.set_postfix(loss=f"{total:.2e}")
    bar.close()
    obj.params = {k: v.detach().clone() for k, v in params.items()}
    return PinnRun(beta=float(beta), seed=seed, config=config, state=obj.state(),
                   history=history, metrics=obj.metrics(), seconds=time.perf_counter() - start)


def run_path(profile: str, beta: float, seed: int):
    """``data/runs/<profile>/pinns/beta<beta>_seed<seed>.pt``."""
    return artifacts.stage_dir(profile, "pinns") / f"beta{beta:g}_seed{seed}.pt"


def load_run(profile: str, beta: float, seed: int) -> PinnRun:
    """Load a trained PINN written by ``02_train_pinns`` (a clear error if missing)."""
    path = run_path(profile, beta, seed)
    blob = artifacts.load_torch(path)
    return PinnRun(beta=blob["beta"], seed=blob["seed"], config=PinnTrainConfig(**blob["config"]),
                   state=blob["state"], history=blob["history"], metrics=blob["metrics"],
                   seconds=blob["seconds"])


def train_or_load(beta: float, seed: int, config: PinnTrainConfig, *, profile: str,
                  device: torch.device | str = "cpu", progress: bool = True) -> tuple[PinnRun, bool]:
    """Load the finished run for ``(profile, beta, seed)`` if its configuration matches,
    else train it and save it atomically.

    Returns:
        The run and whether it was loaded (``True``) or trained (``False``).
    """
    path = run_path(profile, beta, seed)
    wanted = dataclasses.asdict(config)
    key = {"beta": float(beta), "seed": seed, "config": wanted}
    if artifacts.matches(path, key):
        return load_run(profile, beta, seed), True
    run = train_pinn(beta, seed, config, device, progress)
    blob: dict[str, Any] = {"beta": run.beta, "seed": run.seed, "config": wanted,
                            "state": run.state, "history": run.history,
                            "metrics": run.metrics, "seconds": run.seconds}
    artifacts.save_torch(path, blob, params=key, seed=seed,
                         profile=profile, extra={"metrics": run.metrics, "seconds": run.seconds,
                                                 "device": str(device)})
    return run, False


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
