r"""Jump and retrain: sampling the region around a minimum, PHATE, and its homology.

Horoi et al. 2021 explore the loss landscape around trained weights :math:`\theta^*` by
*jumping* to :math:`\theta^* + s\,d` along a filter-normalized random direction :math:`d`
(step sizes :math:`s`, several direction seeds) and *retraining* from there with a small
constant learning rate, keeping the weights after every epoch. All these weight vectors
are embedded in 2-D with PHATE (Moon et al. 2019) on cosine distances, and the shape of
the embedded cloud is measured by persistent homology: a k-nearest-neighbour graph on the
embedding, filtered by the loss (lower star: a vertex enters at its loss, an edge or a
triangle at the largest loss of its vertices), gives H0 (basins that merge) and H1
(loops around high-loss regions) persistence diagrams.

Retraining goes through :func:`lsutils.train.train_or_load`, so every jump's run has
per-epoch checkpoints, resumes after an interruption and is loaded when done.

Example:
    >>> import numpy as np
    >>> points = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    >>> h0, h1 = lower_star_homology(points, np.array([0.0, 2.0, 1.0, 3.0]), k=1)
    >>> h0.tolist(), len(h1)  # the basin at loss 1 merges at loss 2; one essential class
    ([[1.0, 2.0], [0.0, inf]], 0)
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from . import artifacts
from .data import Dataset
from .directions import flatten, random_direction
from .repro import progress_bar
from .settings import check, same_as, setting
from .train import ModelSpec, TrainConfig, evaluate, train_or_load, trajectory

__all__ = ["JumpConfig", "JumpRun", "jump", "jump_and_retrain", "evaluate_states", "stack_states", "phate_embedding",
           "lower_star_homology", "diagram_summary", "config_dict"]


@dataclass(frozen=True)
class JumpConfig:
    """Jumps and the retraining after each (Horoi et al. 2021).

    Attributes:
        steps: jump lengths in filter-normalized units (a step of 1 moves every filter
            by its own norm).
        seeds: direction seeds; every step is taken along every seed's direction.
        epochs: retraining epochs after each jump (the weights after each are kept).
        lr: the constant retraining learning rate.
        momentum, weight_decay, batch_size, augment: the rest of the SGD recipe.
    """

    steps: tuple[float, ...] = setting((0.25, 0.5, 0.75, 1.0), lo=0.0, lo_open=True,
                                       doc="jump lengths, filter-normalized units")
    seeds: tuple[int, ...] = setting((0, 1), lo=0, doc="direction seeds")
    epochs: int = same_as(TrainConfig, "epochs", 5)
    lr: float = same_as(TrainConfig, "lr", 0.01)
    momentum: float = same_as(TrainConfig, "momentum")
    weight_decay: float = same_as(TrainConfig, "weight_decay")
    batch_size: int = same_as(TrainConfig, "batch_size")
    augment: bool = same_as(TrainConfig, "augment", False)

    def __post_init__(self) -> None:
        check(self)

    @classmethod
    def from_training(cls, trained_with: TrainConfig, *, steps: Sequence[float], seeds: Sequence[int],
                      epochs: int, lr: float) -> "JumpConfig":
        """Jumps retrained with the recipe the network was trained with (momentum, weight decay,
        batch size, augmentation) at a constant learning rate ``lr`` for ``epochs``."""
        return cls(steps=tuple(float(s) for s in steps), seeds=tuple(int(k) for k in seeds), epochs=epochs,
                   lr=lr, momentum=trained_with.momentum, weight_decay=trained_with.weight_decay,
                   batch_size=trained_with.batch_size, augment=trained_with.augment)

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, momentum=self.momentum,
                           weight_decay=self.weight_decay, schedule="constant", augment=self.augment)


@dataclass
class JumpRun:
    """One jump and its retraining: ``states[0]`` is the jump point, ``states[e]`` the
    weights after retraining epoch ``e``."""

    step: float
    seed: int
    states: list[dict[str, Tensor]]
    history: dict[str, list[float]] = field(default_factory=dict)
    run_dir: Path | None = None


def jump(state: Mapping[str, Tensor], names: Sequence[str], step: float, seed: int) -> dict[str, Tensor]:
    """``state`` with its parameters ``names`` moved by ``step`` along the filter-normalized
    random direction of ``seed`` (biases and BatchNorm entries stay; buffers are kept)."""
    params = {n: state[n] for n in names}
    d = random_direction(params, seed)
    return {k: (v + step * d[k].to(v) if k in d else v.clone()) for k, v in state.items()}


def jump_and_retrain(spec: ModelSpec, data: Dataset, state: Mapping[str, Tensor], config: JumpConfig, *,
                     root: Path, device: torch.device | str = "cpu", profile: str | None = None,
                     progress: bool = True) -> list[JumpRun]:
    """Jump from ``state`` by every step along every seed's direction and retrain.

    Args:
        spec: builds the model (its ``build()``); ``state`` is loaded into it.
        data: the training data (the same the model was trained on).
        state: the trained weights (a state dict).
        config: steps, seeds and the retraining recipe.
        root: one run folder per jump, ``step<s>_seed<k>``, under it.

    Returns:
        One :class:`JumpRun` per (step, seed), steps outer.
    """
    names = [n for n, _ in spec.build().named_parameters()]
    runs = []
    jobs = [(s, k) for s in config.steps for k in config.seeds]
    for step, seed in progress_bar(jobs, desc="jump and retrain", enabled=progress):
        start = jump(state, names, step, seed)
        run = train_or_load(spec, data, config.train_config(), seed=seed, run_dir=root / f"step{step:g}_seed{seed}",
                            device=device, profile=profile, init=start, progress=False)
        runs.append(JumpRun(step, seed, trajectory(run.run_dir), run.history, run.run_dir))
    # What was run, with the settings actually used: the jumps' config, the start and the data.
    artifacts.save_json(root / "jumps.json", [{"step": r.step, "seed": r.seed, "run_dir": r.run_dir.name,
                                               "final_loss": r.history["train_loss"][-1]} for r in runs],
                        params={"config": config_dict(config), "start": artifacts.digest(dict(state)),
                                "data": data.digest}, profile=profile)
    return runs


def evaluate_states(spec: ModelSpec, states: Sequence[Mapping[str, Tensor]], x: Tensor, y: Tensor, *,
                    device: torch.device | str = "cpu", batch_size: int = 2048,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Loss and accuracy of every state (its own BatchNorm statistics, eval mode) on ``x, y``."""
    model = spec.build().to(device)
    x, y = x.to(device), y.to(device)
    losses, accs = [], []
    for state in progress_bar(states, desc="losses", enabled=progress, leave=False):
        model.load_state_dict(state)
        loss, acc = evaluate(model.eval(), x, y, batch_size)
        losses.append(loss)
        accs.append(acc)
    return np.asarray(losses), np.asarray(accs)


def stack_states(states: Sequence[Mapping[str, Tensor]], names: Sequence[str], *,
                 max_bytes: int = 1 << 30, dims: int = 2048, seed: int = 0) -> np.ndarray:
    """The parameters ``names`` of each state as one row, ``[len(states), D]`` float32.

    When the full matrix would exceed ``max_bytes``, each row is instead projected onto
    ``dims`` seeded Gaussian directions (scaled by ``1/sqrt(dims)``), computed tensor by
    tensor so the full matrix never exists: a Johnson-Lindenstrauss projection that keeps
    cosines to about ``1/sqrt(dims)``.
    """
    total = sum(states[0][n].numel() for n in names)
    if len(states) * total * 4 <= max_bytes:
        return torch.stack([flatten(s, names).detach().float().cpu() for s in states]).numpy()
    gen = torch.Generator().manual_seed(seed)
    out = torch.zeros(len(states), dims)
    for n in names:
        rows = torch.stack([s[n].detach().reshape(-1).float().cpu() for s in states])
        proj = torch.randn(rows.shape[1], dims, generator=gen) / dims ** 0.5
        out += rows @ proj
    return out.numpy()


def phate_embedding(x: np.ndarray, *, n_components: int = 2, knn: int = 5, seed: int = 0,
                    distance: str = "cosine") -> np.ndarray:
    """PHATE (Moon et al. 2019) of the rows of ``x`` with ``distance`` between them.

    PHATE builds a k-nearest-neighbour affinity graph with an adaptive (alpha-decay)
    kernel, diffuses on it for an automatically chosen number of steps, and embeds the
    potential distances of the diffused points by metric MDS.
    """
    import phate

    if len(x) < knn + 2:
        raise ValueError(f"{len(x)} points with knn = {knn}; allowed: at least knn + 2 points")
    # No PCA inside PHATE: it centres the rows, and cosines of centred weight vectors are
    # cosines of displacements from the mean, not of the weights (jumps along orthogonal
    # directions then fall apart into disconnected clusters); reduce with stack_states'
    # uncentred projection instead. SMACOF for the MDS step: exact and fast at the few
    # hundred points of a trajectory set (the stochastic default may not converge on them).
    op = phate.PHATE(n_components=n_components, knn=knn, knn_dist=distance, random_state=seed, verbose=0,
                     n_jobs=1, n_pca=None, mds_solver="smacof")
    with warnings.catch_warnings():  # graphtools advises n_pca, which is off on purpose (above)
        warnings.filterwarnings("ignore", message="Building a kNNGraph on data of shape", category=UserWarning)
        return np.asarray(op.fit_transform(x))


def lower_star_homology(points: np.ndarray, values: np.ndarray, *, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """H0 and H1 persistence diagrams of the k-NN graph of ``points`` filtered by ``values``.

    Every point enters at its value; the edges to its ``k`` nearest neighbours, and the
    triangles they close (the flag complex), enter at the largest value of their points.
    Loops that triangles never fill are essential (death ``inf``).

    Returns:
        ``(h0, h1)``: ``[n, 2]`` arrays of (birth, death), bars of zero length left out.
    """
    import gudhi
    from scipy.spatial import cKDTree

    values = np.asarray(values, float)
    if len(points) == 0:
        raise ValueError("no points; allowed: at least one point")
    points = np.asarray(points, float).reshape(len(points), -1)
    if len(points) != len(values) or not np.isfinite(values).all():
        raise ValueError(f"{len(points)} points and {len(values)} values; allowed: one finite value per point")
    if k < 1:
        raise ValueError(f"k = {k}; allowed: an integer >= 1")
    st = gudhi.SimplexTree()
    for i, v in enumerate(values):
        st.insert([i], filtration=float(v))
    if len(points) > 1:
        _, nbrs = cKDTree(points).query(points, k=min(k + 1, len(points)))
        for i, row in enumerate(np.asarray(nbrs).reshape(len(points), -1)):
            for j in row:
                if int(j) != i:
                    st.insert([i, int(j)], filtration=float(max(values[i], values[j])))
    st.expansion(2)
    # persistence_dim_max: without it gudhi leaves out the top dimension's homology, and a
    # graph without triangles (a complex of dimension 1) would have no H1 at all.
    st.compute_persistence(min_persistence=0.0, persistence_dim_max=True)
    diagrams = []
    for dim in (0, 1):
        d = np.asarray(st.persistence_intervals_in_dimension(dim), float).reshape(-1, 2)
        diagrams.append(d[d[:, 1] > d[:, 0]])
    return diagrams[0], diagrams[1]


def diagram_summary(diagram: np.ndarray) -> dict[str, float]:
    """Bars, essential (infinite) bars, and total and average persistence of the finite ones."""
    finite = diagram[np.isfinite(diagram[:, 1])]
    pers = finite[:, 1] - finite[:, 0]
    return {"bars": int(len(diagram)), "essential": int(len(diagram) - len(finite)),
            "total_persistence": float(pers.sum()), "average_persistence": float(pers.mean()) if len(pers) else 0.0,
            "max_persistence": float(pers.max()) if len(pers) else 0.0}


def config_dict(config: JumpConfig) -> dict[str, Any]:
    """The config as plain JSON (for sidecars)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
