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
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = [
    "ProfileError",
    "Profile",
    "PinnSweepParams",
    "ResnetTrainParams",
    "HessianParams",
    "LandscapeParams",
    "TopologyParams",
    "JumpRetrainParams",
    "NOTEBOOK_SCHEMAS",
    "PROFILE_NAMES",
    "repo_root",
    "profiles_dir",
    "data_root",
    "load_profile",
]

PROFILE_NAMES = ("smoke", "quick", "full")
DEFAULT_BUDGET_GB = 16.0
DEVICES = ("auto", "cpu", "cuda", "mps")


class ProfileError(ValueError):
    """A profile that does not exist or does not validate."""


def _spec(default: Any, *, lo: float | None = None, hi: float | None = None,
          lo_open: bool = False, choices: tuple | None = None, doc: str = "") -> Any:
    """A dataclass field carrying its allowed range (``lo``/``hi``) or ``choices``."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices, "doc": doc}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class PinnSweepParams:
    """Parameters of ``02_train_pinns``: the convection sweep of Krishnapriyan et al. 2021."""

    betas: list = _spec([1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0], lo=0.0, lo_open=True,
                        doc="convection coefficients beta")
    seeds: list = _spec([0, 1], lo=0, doc="training seeds per beta")
    n_collocation: int = _spec(1000, lo=1, doc="interior collocation points")
    n_initial: int = _spec(256, lo=1, doc="points on u(x, 0) = sin x")
    n_boundary: int = _spec(100, lo=1, doc="time points on the periodic boundary")
    width: int = _spec(50, lo=1, doc="hidden width of the tanh MLP")
    depth: int = _spec(4, lo=1, doc="hidden layers of the tanh MLP")
    adam_steps: int = _spec(1000, lo=0, doc="Adam steps before L-BFGS")
    adam_lr: float = _spec(1e-3, lo=0.0, lo_open=True, doc="Adam learning rate")
    lbfgs_steps: int = _spec(500, lo=0, doc="L-BFGS iterations (strong Wolfe)")
    low_beta: float = _spec(1.0, lo=0.0, lo_open=True, doc="beta shown as the success case")
    high_beta: float = _spec(30.0, lo=0.0, lo_open=True, doc="beta shown as the failure case")

    def __post_init__(self) -> None:
        for key in ("low_beta", "high_beta"):
            if getattr(self, key) not in self.betas:
                raise ProfileError(f"{key} = {getattr(self, key)!r} must be one of betas: {self.betas}")


@dataclass(frozen=True)
class ResnetTrainParams:
    """Parameters of ``01_train_resnets``: ResNets with and without skips (Xie et al. 2024)."""

    dataset: str = _spec("mnist1d", choices=("mnist1d", "cifar10"), doc="training data")
    num_samples: int = _spec(10000, lo=20, doc="MNIST-1D samples generated (80% train)")
    n_train: int = _spec(0, lo=0, doc="use the first n training samples (0: all)")
    n_test: int = _spec(0, lo=0, doc="use the first n test samples (0: all)")
    depth: int = _spec(20, lo=8, doc="ResNet depth, 6n + 2")
    width: int = _spec(1, lo=1, doc="channel multiplier")
    seeds: list = _spec([0, 1, 2], lo=0, doc="training seeds per variant")
    epochs: int = _spec(30, lo=1, doc="training epochs")
    batch_size: int = _spec(128, lo=1, doc="SGD batch size")
    lr: float = _spec(0.1, lo=0.0, lo_open=True, doc="peak learning rate")
    momentum: float = _spec(0.9, lo=0.0, hi=0.999, doc="SGD momentum")
    weight_decay: float = _spec(5e-4, lo=0.0, doc="L2 penalty")
    schedule: str = _spec("cosine", choices=("cosine", "step", "constant"), doc="learning-rate schedule")
    augment: bool = _spec(True, doc="crop+flip (images) or shift (signals)")

    def __post_init__(self) -> None:
        if (self.depth - 2) % 6:
            raise ProfileError(f"depth = {self.depth}; allowed: 6n + 2 (8, 14, 20, 32, 56, ...)")


@dataclass(frozen=True)
class HessianParams:
    """Parameters of ``03_hessian``: curvature of every trained ResNet and PINN."""

    n_samples: int = _spec(1000, lo=0, doc="training samples in the classifier loss (0: all)")
    top_k: int = _spec(20, lo=1, doc="top eigenvalues by Lanczos")
    tol: float = _spec(1e-3, lo=0.0, lo_open=True, doc="relative residual tolerance")
    max_steps: int = _spec(150, lo=1, doc="cap on Lanczos steps")
    trace_probes: int = _spec(50, lo=2, doc="Hutchinson probes")
    slq_runs: int = _spec(2, lo=1, doc="SLQ runs")
    slq_steps: int = _spec(60, lo=1, doc="Lanczos steps per SLQ run")
    save_vectors: int = _spec(3, lo=0, doc="top eigenvectors kept for the landscapes")
    pyhessian_check: bool = _spec(True, doc="compare the top eigenvalue with PyHessian")

    def __post_init__(self) -> None:
        if self.save_vectors > self.top_k:
            raise ProfileError(f"save_vectors = {self.save_vectors}; allowed: at most top_k = {self.top_k}")


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

    @property
    def n_points(self) -> int:
        """Weight vectors per network: the trained one and every retraining epoch of every jump."""
        return 1 + len(self.jump_steps) * len(self.jump_seeds) * (self.retrain_epochs + 1)

    def __post_init__(self) -> None:
        if self.knn + 2 > self.n_points:
            raise ProfileError(f"knn = {self.knn}; allowed: at most {self.n_points - 2} (the {self.n_points} "
                               "weight vectors per network, less 2)")


#: notebook stem -> dataclass of its parameters. A later chapter adds its own here.
NOTEBOOK_SCHEMAS: dict[str, type] = {
    "01_train_resnets": ResnetTrainParams,
    "02_train_pinns": PinnSweepParams,
    "03_hessian": HessianParams,
    "04_landscapes": LandscapeParams,
    "05_topology": TopologyParams,
    "06_jump_and_retrain": JumpRetrainParams,
}


@dataclass(frozen=True)
class Profile:
    """A validated profile: global settings plus one parameter set per notebook.

    Attributes:
        name: ``smoke``, ``quick`` or ``full``.
        seed: the global seed; notebooks derive their run seeds from it.
        device: ``auto`` picks CUDA, then MPS, then the CPU.
        gpu_sized: whether this profile is meant for a GPU (a warning on CPU).
        description: one line shown by the pipeline.
        notebooks: notebook stem -> its validated parameters.
    """

    name: str
    seed: int = 0
    device: str = "auto"
    gpu_sized: bool = False
    description: str = ""
    notebooks: Mapping[str, Any] = field(default_factory=dict)

    def notebook_params(self, stem: str) -> dict[str, Any]:
        """Everything papermill injects into notebook ``stem``.

        The global keys (``profile``, ``seed``, ``device``, ``gpu_sized``) come
        first, then the notebook's own section (empty for a notebook without one).
        """
        out: dict[str, Any] = {"profile": self.name, "seed": self.seed, "device": self.device,
                               "gpu_sized": self.gpu_sized}
        section = self.notebooks.get(stem)
        if section is not None:
            out.update(dataclasses.asdict(section))
        return out


def repo_root() -> Path:
    """The checkout that holds this package (the folder with ``pyproject.toml``)."""
    return Path(__file__).resolve().parent.parent


def profiles_dir() -> Path:
    """``notebooks/profiles`` of the checkout, or ``LSUTILS_PROFILES`` when set."""
    env = os.environ.get("LSUTILS_PROFILES")
    return Path(env) if env else repo_root() / "notebooks" / "profiles"


def data_root() -> Path:
    """Where downloads (``raw/``) and run artifacts (``runs/``) live.

    ``LSUTILS_DATA`` wins; otherwise ``<repo>/data`` in a checkout, or ``./data``
    for an installed package (Colab).
    """
    env = os.environ.get("LSUTILS_DATA")
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    if (root / "pyproject.toml").exists():
        return root / "data"
    return Path.cwd() / "data"


def _check_value(where: str, value: Any, f: dataclasses.Field) -> Any:
    meta = f.metadata
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if isinstance(default, list):
        if not isinstance(value, list) or not value:
            raise ProfileError(f"{where}: expected a non-empty list, got {value!r}")
        kind = type(default[0])
        return [_check_scalar(f"{where}[{i}]", v, kind, meta) for i, v in enumerate(value)]
    return _check_scalar(where, value, type(default), meta)


def _check_scalar(where: str, value: Any, kind: type, meta: Mapping[str, Any]) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise ProfileError(f"{where}: expected true or false, got {value!r}")
        return value
    if kind in (int, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise ProfileError(f"{where} = {value!r} is not finite; allowed: a finite number")
        if kind is int and ok and float(value) != int(value):
            ok = False
        if not ok:
            raise ProfileError(f"{where}: expected {'an integer' if kind is int else 'a number'}, got {value!r}")
        value = kind(value)
        lo, hi = meta.get("lo"), meta.get("hi")
        too_low = lo is not None and (value <= lo if meta.get("lo_open") else value < lo)
        too_high = hi is not None and value > hi
        if too_low or too_high:
            left = "(" if meta.get("lo_open") else "["
            rng = f"{left}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            raise ProfileError(f"{where} = {value!r} is out of range; allowed: {rng}")
        return value
    if meta.get("choices") and value not in meta["choices"]:
        raise ProfileError(f"{where} = {value!r}; allowed: {', '.join(map(str, meta['choices']))}")
    if not isinstance(value, kind):
        raise ProfileError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


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
        return cls(**{k: _check_value(f"{where}.{k}", v, fields[k]) for k, v in raw.items()})
    except ProfileError as err:
        if str(err).startswith(where):
            raise
        raise ProfileError(f"{where}.{err}") from None


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
    return {}


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PB"


def load_profile(name: str, path: str | os.PathLike | None = None) -> Profile:
    """Read and validate a profile.

    Args:
        name: the profile's name (``smoke``, ``quick``, ``full``, or any YAML
            file stem in the profiles folder).
        path: an explicit YAML file instead of ``profiles_dir()/<name>.yaml``.

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
        return _load(name, file)
    except ProfileError as err:
        raise ProfileError(f"{file}: {err}") from None


def _load(name: str, file: Path) -> Profile:
    try:
        raw = yaml.load(file.read_text(encoding="utf-8"), Loader=_ProfileLoader) or {}
    except UnicodeDecodeError as err:
        raise ProfileError(f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ProfileError(f"not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(raw, dict):
        raise ProfileError("expected a mapping at the top")
    allowed = ("seed", "device", "gpu_sized", "description", "memory_budget_gb", "notebooks")
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ProfileError(f"unknown key {unknown[0]!r}; allowed keys: {', '.join(allowed)}")
    seed = _check_scalar("seed", raw.get("seed", 0), int, {"lo": 0})
    device = raw.get("device", "auto")
    if device not in DEVICES:
        raise ProfileError(f"device = {device!r}; allowed: {', '.join(DEVICES)}")
    gpu_sized = _check_scalar("gpu_sized", raw.get("gpu_sized", False), bool, {})
    budget = _check_scalar("memory_budget_gb", raw.get("memory_budget_gb", DEFAULT_BUDGET_GB), float,
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
                   description=str(raw.get("description", "")), notebooks=notebooks)
