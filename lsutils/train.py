"""Classifier training that leaves a trajectory and survives interruptions.

Mini-batch SGD with momentum and weight decay on a learning-rate schedule
(cosine, step or constant), with augmentation (random crop with zero padding and a
horizontal flip for images; a random shift with zero padding for 1-D signals).
After each epoch the model is evaluated on the test set and its weights are
saved: ``epoch_000.pt`` (the initialisation) to ``epoch_<E>.pt`` is the
*trajectory* that the landscape chapter projects and the jump-and-retrain chapter
restarts from. A small ``resume.pt`` (optimizer, random-generator state, history)
is rewritten atomically each epoch, so an interrupted run resumes at the last
finished epoch and ends with exactly the weights of an uninterrupted one.

Randomness comes from one ``torch.Generator`` seeded with the run's seed (batch
order and augmentation) and from ``torch.manual_seed(seed)`` before the model is
built (initialisation): the same seed on the same machine gives identical weights.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from lsutils.data import load_dataset
    >>> from lsutils.models import ResNetSpec
    >>> data = load_dataset("mnist1d", num_samples=200)
    >>> spec = ResNetSpec(depth=8, skip=True, dim=1, in_channels=1)
    >>> run_dir = Path(tempfile.mkdtemp()) / "resnet8_skip_seed0"
    >>> run = train_or_load(spec, data, TrainConfig(epochs=1, batch_size=32), seed=0, run_dir=run_dir,
    ...                     progress=False)
    >>> run.loaded, len(run.history["test_acc"]), len(trajectory(run_dir))  # initialisation + 1 epoch
    (False, 1, 2)
    >>> train_or_load(spec, data, TrainConfig(epochs=1, batch_size=32), seed=0, run_dir=run_dir).loaded
    True
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import artifacts
from .data import Dataset
from .repro import progress_bar
from .settings import check, setting
from .sweep import Cell

__all__ = ["TrainConfig", "TrainRun", "ModelSpec", "augment_batch", "lr_at", "evaluate",
           "train_classifier", "train_or_load", "load_run", "trajectory", "saved_epochs", "epoch_state", "run_dir_for",
           "summary_table", "TrainingDiverged", "check_finite", "TrainTask"]

SCHEDULES = ("cosine", "step", "constant")


class TrainingDiverged(RuntimeError):
    """A loss or a weight became NaN or infinite; nothing of the run is saved as finished."""


def check_finite(run: str, where: str, loss: float, model: nn.Module | None = None, hint: str = "") -> None:
    """Raise :class:`TrainingDiverged` naming the run, the step and the likely cause when the
    loss (or any weight of ``model``) is not finite."""
    bad = None if math.isfinite(loss) else f"the loss is {loss}"
    if bad is None and model is not None:
        name = next((n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())), None)
        bad = None if name is None else f"weight {name!r} holds NaN or infinite entries"
    if bad is not None:
        hint = hint or "the learning rate is likely too large"
        raise TrainingDiverged(f"run {run} diverged at {where}: {bad}; {hint}; nothing was saved as a finished run")


class ModelSpec(Protocol):
    """Anything frozen (a dataclass) that builds a model: e.g. :class:`~lsutils.models.ResNetSpec`."""

    def build(self) -> nn.Module: ...


@dataclass(frozen=True)
class TrainConfig:
    """How a classifier is trained.

    Attributes:
        epochs: passes over the training set.
        batch_size: samples per SGD step.
        lr: peak learning rate.
        momentum: SGD (heavy-ball) momentum.
        weight_decay: L2 penalty coefficient.
        schedule: ``cosine`` (to 0 at the last epoch), ``step`` (x0.1 at 50% and
            75% of the epochs) or ``constant``.
        augment: random crop + flip (images) or random shift (signals).
        pad: padding in samples/pixels for the crop or shift.
        eval_batch_size: samples per evaluation forward pass.
    """

    epochs: int = setting(30, lo=1, doc="training epochs")
    batch_size: int = setting(128, lo=1, doc="SGD batch size")
    lr: float = setting(0.1, lo=0.0, lo_open=True, doc="peak learning rate")
    momentum: float = setting(0.9, lo=0.0, hi=0.999, doc="SGD momentum")
    weight_decay: float = setting(5e-4, lo=0.0, doc="L2 penalty")
    schedule: str = setting("cosine", choices=SCHEDULES, doc="learning-rate schedule")
    augment: bool = setting(True, doc="crop+flip (images) or shift (signals)")
    pad: int = setting(4, lo=0, doc="padding of the crop or shift")
    eval_batch_size: int = setting(2048, lo=1, doc="samples per evaluation forward pass")

    def __post_init__(self) -> None:
        check(self)


@dataclass
class TrainRun:
    """A finished (or resumed) training run."""

    model: nn.Module
    history: dict[str, list[float]] = field(default_factory=dict)
    run_dir: Path | None = None
    seconds: float = 0.0
    loaded: bool = False

    @property
    def test_acc(self) -> float:
        return self.history["test_acc"][-1]

    @property
    def test_loss(self) -> float:
        return self.history["test_loss"][-1]


def lr_at(epoch: int, config: TrainConfig) -> float:
    """The learning rate of (0-based) ``epoch``."""
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / config.epochs))
    if config.schedule == "step":
        return config.lr * (0.1 ** ((epoch >= config.epochs // 2) + (epoch >= (3 * config.epochs) // 4)))
    return config.lr


def augment_batch(x: Tensor, pad: int, generator: torch.Generator, flip: bool | None = None) -> Tensor:
    """Random crop with zero padding (and, for images, a horizontal flip), per sample.

    For signals ``[N, C, L]`` this is a random shift by ``-pad..pad``; for images
    ``[N, C, H, W]`` a random ``H x W`` crop of the ``pad``-padded image, flipped
    left-right with probability 1/2 (``flip`` defaults to True for images).
    """
    n, dim = x.shape[0], x.dim() - 2
    if dim not in (1, 2):
        raise ValueError(f"x has shape {tuple(x.shape)}; allowed: [N, C, L] or [N, C, H, W]")
    dev = x.device
    if pad > 0:
        padded = F.pad(x, [pad, pad] * dim)
        size = x.shape[-1]
        offs = torch.randint(0, 2 * pad + 1, (n, dim), generator=generator).to(dev)
        ar = torch.arange(size, device=dev)
        nidx = torch.arange(n, device=dev)
        cidx = torch.arange(x.shape[1], device=dev)
        if dim == 1:
            ix = offs[:, 0:1] + ar  # [N, L]
            x = padded[nidx[:, None, None], cidx[None, :, None], ix[:, None, :]]
        else:
            iy = offs[:, 0:1] + torch.arange(x.shape[-2], device=dev)
            ix = offs[:, 1:2] + ar
            x = padded[nidx[:, None, None, None], cidx[None, :, None, None],
                       iy[:, None, :, None], ix[:, None, None, :]]
    if flip if flip is not None else dim == 2:
        mask = (torch.rand(n, generator=generator) < 0.5).to(dev)
        x = torch.where(mask.view(-1, *[1] * (x.dim() - 1)), x.flip(-1), x)
    return x


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 2048) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) on ``(x, y)``."""
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        out = model(x[i:i + batch_size])
        loss += float(F.cross_entropy(out, y[i:i + batch_size], reduction="sum"))
        correct += int((out.argmax(1) == y[i:i + batch_size]).sum())
    model.train(was_training)
    return loss / len(x), correct / len(x)


def _epoch_path(run_dir: Path, epoch: int) -> Path:
    return run_dir / f"epoch_{epoch:03d}.pt"


def _identity(spec: ModelSpec, data: Dataset, config: TrainConfig, seed: int,
              init: Mapping[str, Tensor] | None = None) -> dict[str, Any]:
    fields = spec.record() if hasattr(spec, "record") else dataclasses.asdict(spec)
    ident = {"model": {"type": type(spec).__name__, **fields},
             "data": {"name": data.name, "n_train": len(data.x_train), "n_test": len(data.x_test),
                      "digest": data.digest},
             "train": dataclasses.asdict(config), "seed": seed}
    if init is not None:
        ident["init"] = artifacts.digest(dict(init))
    return ident


def train_classifier(spec: ModelSpec, data: Dataset, config: TrainConfig, *, seed: int,
                     run_dir: Path, device: torch.device | str = "cpu", progress: bool = True,
                     stop_after: int | None = None, profile: str | None = None,
                     init: Mapping[str, Tensor] | None = None) -> TrainRun:
    """Train (or resume) one classifier, saving every epoch under ``run_dir``.

    Args:
        spec: what to build (``spec.build()``), seeded with ``seed``.
        data: fixed train/test tensors (moved to ``device`` once).
        config: the optimisation recipe.
        seed: initialisation, batch order and augmentation.
        run_dir: where ``epoch_*.pt``, ``resume.pt`` and ``final.json`` go.
        stop_after: stop after this many epochs in total (as an interruption would).
        init: start from these weights (a state dict) instead of the seeded
            initialisation; recorded by its digest, so a different start retrains.

    Returns:
        The run; ``history`` holds per-epoch ``lr``, ``train_loss``, ``train_acc``
        (running averages over the epoch, augmented), ``test_loss`` and ``test_acc``.
    """
    device = torch.device(device)
    ident = _identity(spec, data, config, seed, init)
    model, opt, gen, history, start_epoch = _start(spec, data, config, seed=seed, run_dir=run_dir, device=device,
                                                   init=init, ident=ident, profile=profile)
    x_tr, y_tr = data.x_train.to(device), data.y_train.to(device)
    x_te, y_te = data.x_test.to(device), data.y_test.to(device)
    last = config.epochs if stop_after is None else min(config.epochs, stop_after)
    t0 = time.perf_counter()
    bar = progress_bar(range(start_epoch, last), desc=getattr(spec, "name", "model") + f" seed {seed}",
                       enabled=progress, leave=False, initial=start_epoch, total=config.epochs)
    for epoch in bar:
        lr = lr_at(epoch, config)
        train_loss, train_acc = _train_epoch(model, opt, gen, x_tr, y_tr, config, lr,
                                             where=(run_dir.name, epoch))
        test_loss, test_acc = evaluate(model, x_te, y_te, config.eval_batch_size)
        for k, v in (("lr", lr), ("train_loss", train_loss), ("train_acc", train_acc),
                     ("test_loss", test_loss), ("test_acc", test_acc)):
            history[k].append(v)
        bar.set_postfix(test_acc=f"{test_acc:.3f}", loss=f"{train_loss:.3f}")
        _save_epoch(run_dir, epoch + 1, model, opt, gen, history, (test_loss, test_acc),
                    ident=ident, seed=seed, profile=profile)
    bar.close()
    seconds = time.perf_counter() - t0
    if last == config.epochs:
        artifacts.save_json(run_dir / "final.json", {"history": history, "seconds": seconds},
                            params=ident, seed=seed, profile=profile,
                            extra={"test_acc": history["test_acc"][-1], "device": str(device)})
    return TrainRun(model.eval(), history, run_dir, seconds)


def _start(spec: ModelSpec, data: Dataset, config: TrainConfig, *, seed: int, run_dir: Path, device: torch.device,
           init: Mapping[str, Tensor] | None, ident: dict[str, Any], profile: str | None
           ) -> tuple[nn.Module, torch.optim.Optimizer, torch.Generator, dict[str, list[float]], int]:
    """The model, optimizer, generator and history to train from: resumed from the last finished
    epoch of a matching partial run, else fresh (the initialisation saved as epoch 0)."""
    torch.manual_seed(seed)
    model = spec.build().to(device)
    if init is not None:
        model.load_state_dict(init)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {k: [] for k in
                                       ("lr", "train_loss", "train_acc", "test_loss", "test_acc")}
    resume = run_dir / "resume.pt"
    if artifacts.exists(resume) and artifacts.read_meta(resume)["params"] == ident:
        state = artifacts.load_torch(resume)
        model.load_state_dict(artifacts.load_torch(_epoch_path(run_dir, state["epoch"]))["state"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        return model, opt, gen, state["history"], state["epoch"]
    shutil.rmtree(run_dir, ignore_errors=True)  # a stale or foreign run: start clean
    x0, y0 = data.x_test.to(device), data.y_test.to(device)
    artifacts.save_torch(_epoch_path(run_dir, 0), {"state": model.state_dict(), "epoch": 0,
                                                   "test": evaluate(model, x0, y0, config.eval_batch_size)},
                         params=ident, seed=seed, profile=profile)
    return model, opt, gen, history, 0


def _train_epoch(model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator, x: Tensor, y: Tensor,
                 config: TrainConfig, lr: float, *, where: tuple[str, int]) -> tuple[float, float]:
    """One pass of SGD at learning rate ``lr`` over ``(x, y)`` in the generator's order, with
    augmentation; the running mean loss and accuracy. Raises :class:`TrainingDiverged`."""
    run, epoch = where
    for group in opt.param_groups:
        group["lr"] = lr
    model.train()
    n = len(x)
    order = torch.randperm(n, generator=gen).to(x.device)
    tot_loss, tot_correct = 0.0, 0
    hint = f"the learning rate ({lr:g}) is likely too large"
    for i in range(0, n, config.batch_size):
        idx = order[i:i + config.batch_size]
        xb, yb = x[idx], y[idx]
        if config.augment:
            xb = augment_batch(xb, config.pad, gen)
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        check_finite(run, f"epoch {epoch + 1}, step {i // config.batch_size + 1}", float(loss.detach()), hint=hint)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tot_loss += float(loss.detach()) * len(idx)
        tot_correct += int((out.argmax(1) == yb).sum())
    check_finite(run, f"the end of epoch {epoch + 1}", tot_loss / n, model, hint=hint)
    return tot_loss / n, tot_correct / n


def _save_epoch(run_dir: Path, epoch: int, model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator,
                history: dict[str, list[float]], test: tuple[float, float], *, ident: dict[str, Any], seed: int,
                profile: str | None) -> None:
    """The weights after ``epoch`` (the trajectory) and what a resume needs, both atomically."""
    artifacts.save_torch(_epoch_path(run_dir, epoch), {"state": model.state_dict(), "epoch": epoch, "test": test},
                         params=ident, seed=seed, profile=profile)
    artifacts.save_torch(run_dir / "resume.pt", {"epoch": epoch, "optimizer": opt.state_dict(),
                                                 "generator": gen.get_state(), "history": history},
                         params=ident, seed=seed, profile=profile)


def load_run(spec: ModelSpec, run_dir: Path, device: torch.device | str = "cpu") -> TrainRun:
    """A finished run: the last epoch's weights and the history (clear error if absent)."""
    final = artifacts.load_json(run_dir / "final.json")
    epochs = artifacts.read_meta(run_dir / "final.json")["params"]["train"]["epochs"]
    model = spec.build()
    model.load_state_dict(artifacts.load_torch(_epoch_path(run_dir, epochs))["state"])
    return TrainRun(model.to(device).eval(), final["history"], run_dir, final["seconds"], loaded=True)


def train_or_load(spec: ModelSpec, data: Dataset, config: TrainConfig, *, seed: int, run_dir: Path,
                  device: torch.device | str = "cpu", progress: bool = True,
                  profile: str | None = None, init: Mapping[str, Tensor] | None = None) -> TrainRun:
    """Load the finished run in ``run_dir`` if it was trained exactly so (same ``init``
    too); else train (resuming from the last finished epoch when a matching partial run
    exists)."""
    final = run_dir / "final.json"
    if artifacts.exists(final) and artifacts.read_meta(final)["params"] == _identity(spec, data, config, seed, init):
        return load_run(spec, run_dir, device)
    return train_classifier(spec, data, config, seed=seed, run_dir=run_dir, device=device,
                            progress=progress, profile=profile, init=init)


@dataclass(frozen=True)
class TrainTask:
    """A sweep task (:func:`lsutils.sweep.run_sweep`): train or load one classifier per cell.

    A cell is named after its run folder (``resnet20_skip_seed0``) and its parameters are
    the run's identity (model, data digest, recipe, seed), so a finished cell is exactly a
    finished run; the run folder is ``run_dir_for(profile, spec.name, seed)``.

    Attributes:
        specs: spec name -> what to build.
        data: the training and test data (shipped once per cell to a worker).
        config: the recipe.
        profile: the profile whose folders the runs go to.
        progress: the per-epoch bar (serial sweeps only; workers keep quiet).
    """

    specs: Mapping[str, ModelSpec]
    data: Dataset
    config: TrainConfig
    profile: str
    progress: bool = False

    def cells(self, seeds: Any) -> list[Cell]:
        """One cell per (spec, seed), specs outer."""
        return [Cell("resnets", f"{name}_seed{seed}", _identity(spec, self.data, self.config, seed))
                for name, spec in self.specs.items() for seed in seeds]

    def __call__(self, cell: Cell, device: torch.device) -> dict[str, float]:
        spec, seed = self.specs[cell.name.rsplit("_seed", 1)[0]], int(cell.params["seed"])
        run = train_or_load(spec, self.data, self.config, seed=seed, run_dir=run_dir_for(self.profile, spec.name, seed),
                            device=device, progress=self.progress, profile=self.profile)
        return {"test_acc": run.test_acc, "test_loss": run.test_loss, "train_loss": run.history["train_loss"][-1],
                "train_acc": run.history["train_acc"][-1]}


def trajectory(run_dir: Path) -> list[dict[str, Tensor]]:
    """The weights of every epoch of a finished run, ``epoch_000`` (initialisation) first."""
    return [epoch_state(run_dir, e) for e in range(saved_epochs(run_dir) + 1)]


def saved_epochs(run_dir: Path) -> int:
    """The number of training epochs of a finished run (its states are epochs 0 to this)."""
    return int(artifacts.read_meta(run_dir / "final.json")["params"]["train"]["epochs"])


def epoch_state(run_dir: Path, epoch: int) -> dict[str, Tensor]:
    """The weights and buffers of a run after ``epoch`` epochs (0: the initialisation)."""
    return artifacts.load_torch(_epoch_path(run_dir, epoch))["state"]


def run_dir_for(profile: str, name: str, seed: int) -> Path:
    """``data/runs/<profile>/resnets/<name>_seed<seed>``, e.g. ``resnet20_noskip_seed0``."""
    return artifacts.stage_dir(profile, "resnets") / f"{name}_seed{seed}"


def summary_table(runs: dict[str, list[TrainRun]]) -> list[dict[str, Any]]:
    """Per variant: final test accuracy (%) and loss as mean and standard deviation over
    seeds (the sample standard deviation; 0 for one seed), final training accuracy, seconds per run."""
    import numpy as np

    rows = []
    for name, group in runs.items():
        acc = np.array([100 * r.test_acc for r in group])
        loss = np.array([r.test_loss for r in group])
        ddof = 1 if len(group) > 1 else 0
        rows.append({"model": name, "seeds": len(group),
                     "test_acc_mean": float(acc.mean()), "test_acc_std": float(acc.std(ddof=ddof)),
                     "test_loss_mean": float(loss.mean()), "test_loss_std": float(loss.std(ddof=ddof)),
                     "train_acc_mean": float(np.mean([100 * r.history["train_acc"][-1] for r in group])),
                     "seconds_mean": float(np.mean([r.seconds for r in group]))})
    return rows
