r"""The one abstraction: an objective over parameters.

Landscapes, Hessians, mode connectivity and topology see a model only as a
deterministic function of its parameters,

.. math:: L(\theta) = \frac{1}{N} \sum_{i=1}^{N} \ell(f_\theta(x_i), y_i),

where :math:`\theta` is a ``dict[str, Tensor]`` (the point in weight space;
buffers such as BatchNorm statistics are held fixed) and the data are fixed
tensors on the objective's device. An :class:`Objective` provides

- ``objective(params) -> Tensor``: the scalar loss, differentiable (twice) in params;
- ``objective.batched(stacked) -> Tensor``: the losses of ``B`` points at once,
  ``torch.func.vmap`` over parameters stacked on a leading axis, chunked;
- ``objective.metrics(params) -> dict``: what the paper reports beside the loss
  (accuracy for classifiers, relative L2 error for PINNs);
- ``objective.train_loss(params, generator) -> Tensor``: the loss a training step takes
  at ``params`` (a random minibatch with BatchNorm on batch statistics for a classifier;
  the whole loss for a PINN), what curve and simplex fitting minimize;
- ``objective.fit_buffers(params)``: BatchNorm statistics recomputed at ``params`` on the
  objective's data, and ``objective.with_buffers(buffers)``: the same objective evaluated
  with them (a point on a curve between two networks has no statistics of its own).

The Hessian engine, the grid evaluator and curve fitting never know which
concrete objective they hold.

Example:
    >>> import torch
    >>> from lsutils.convection import ConvectionProblem
    >>> from lsutils.models import PinnMLP
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> problem = ConvectionProblem(beta=1.0)
    >>> obj = PinnObjective(PinnMLP(width=8, depth=2), problem, problem.sample(64, 16, 8, seed=0))
    >>> loss = obj(obj.params)                           # the loss at the model's weights
    >>> losses = obj.batched(stack_params([obj.params] * 4))  # four points in one call
    >>> bool(torch.allclose(losses, loss.expand(4)))
    True
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from abc import ABC, abstractmethod
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call, jvp, vmap

from .convection import ConvectionProblem, PinnPoints, relative_l2_error
from .models import PinnMLP

__all__ = ["Params", "Objective", "ClassifierObjective", "QuadraticObjective", "FunctionObjective", "PinnObjective",
           "detach_params", "stack_params"]

Params = dict[str, Tensor]


def detach_params(module: nn.Module) -> Params:
    """A module's parameters as a detached, cloned ``dict`` (the centre point)."""
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def stack_params(points: list[Mapping[str, Tensor]]) -> Params:
    """Stack ``B`` parameter dicts into one dict of ``[B, ...]`` tensors."""
    if not points:
        raise ValueError("points must hold at least one parameter dict")
    return {k: torch.stack([p[k] for p in points]) for k in points[0]}


class Objective(ABC):
    """A deterministic loss over a model's parameters (base class).

    Subclasses implement :meth:`loss` (and usually :meth:`metrics`); they call
    :meth:`forward` to run the model at given parameters, which keeps the
    model's buffers fixed and the model in eval mode.

    Args:
        model: the network; its current parameters become :attr:`params`.
        device: where the data and parameters live.
        chunk_size: default number of points per vmapped call in :meth:`batched`.
    """

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu",
                 chunk_size: int | None = 64) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.params: Params = detach_params(self.model)
        self.buffers: dict[str, Tensor] = {k: v.detach() for k, v in self.model.named_buffers()}
        self.chunk_size = chunk_size

    # -- the interface -------------------------------------------------------------
    @abstractmethod
    def loss(self, params: Mapping[str, Tensor]) -> Tensor:
        """The scalar full-data loss at ``params``."""

    def metrics(self, params: Mapping[str, Tensor] | None = None) -> dict[str, float]:
        """:meth:`evaluate` at ``params`` (default: the centre) as plain floats."""
        with torch.no_grad():
            return {k: float(v) for k, v in self.evaluate(self.params if params is None else params).items()}

    def evaluate(self, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Loss and metrics at ``params`` as tensors, in one pass (``vmap``-able).
        The base class reports the loss alone; subclasses add their metric."""
        return {"loss": self.loss(params)}

    # -- shared machinery ----------------------------------------------------------
    def __call__(self, params: Mapping[str, Tensor] | None = None) -> Tensor:
        return self.loss(self.params if params is None else params)

    def forward(self, params: Mapping[str, Tensor], *inputs: Tensor) -> Tensor:
        """The model's output at ``params`` (buffers fixed)."""
        return functional_call(self.model, ({**params}, self.buffers), inputs)

    def train_loss(self, params: Mapping[str, Tensor], generator: torch.Generator) -> Tensor:
        """The stochastic loss one training step takes at ``params`` (what curve and simplex
        fitting minimize); ``generator`` draws its minibatch. The base class has no data to
        sample: the whole loss."""
        return self.loss(params)

    @property
    def has_batchnorm(self) -> bool:
        """Whether the model keeps BatchNorm running statistics (which then depend on the weights)."""
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
                   for m in self.model.modules())

    def fit_buffers(self, params: Mapping[str, Tensor], n_samples: int = 0) -> dict[str, Tensor]:
        """The buffers that belong to ``params``: BatchNorm statistics recomputed on the first
        ``n_samples`` (0: all) of the objective's inputs. Without BatchNorm: the buffers as they are."""
        return dict(self.buffers)

    def with_buffers(self, buffers: Mapping[str, Tensor]) -> "Objective":
        """This objective with other buffers (e.g. :meth:`fit_buffers` at another point); the data
        are shared, not copied."""
        missing = sorted(set(self.buffers) - set(buffers))
        if missing:
            raise ValueError(f"buffers lack {missing[0]!r}; allowed: a dict with the keys of objective.buffers")
        out = copy.copy(self)
        out.buffers = {k: buffers[k].to(self.device) for k in self.buffers}
        return out

    def data_key(self) -> dict[str, str]:
        """What fixes the objective's values besides the parameters, as digests: its kind, the
        model's buffers, and the data and settings (:meth:`_data`). Part of every cache key."""
        from .artifacts import digest

        return {"kind": type(self).__name__, "buffers": digest(self.buffers), "data": digest(self._data())}

    def _data(self) -> Any:
        """The data and settings a subclass's loss depends on (tensors, numbers)."""
        return {}

    @property
    def num_params(self) -> int:
        """Number of scalar parameters."""
        return sum(v.numel() for v in self.params.values())

    def batched(self, stacked: Mapping[str, Tensor], chunk_size: int | None = None) -> Tensor:
        """Losses at ``B`` parameter points stacked on a leading axis, shape ``[B]``.

        The loss of :meth:`batched_evaluate`: ``torch.func.vmap`` over the points,
        ``chunk_size`` at a time (default: the objective's), the data read once per chunk.
        """
        return self.batched_evaluate(stacked, chunk_size, metrics=False)["loss"]

    def batched_evaluate(self, stacked: Mapping[str, Tensor], chunk_size: int | None = None,
                         metrics: bool = True) -> dict[str, Tensor]:
        """:meth:`evaluate` at ``B`` stacked points: ``{name: [B]}``.

        ``chunk_size`` points go through one ``vmap``ped call; with ``chunk_size=1``
        the points are evaluated one after another without ``vmap`` (best for large
        convolutional models on a CPU, where a batched weight turns every convolution
        into a grouped one). ``metrics=False`` evaluates the loss alone.
        """
        chunk = self.chunk_size if chunk_size is None else chunk_size
        fn = self.evaluate if metrics else (lambda p: {"loss": self.loss(p)})
        if chunk == 1:
            n = next(iter(stacked.values())).shape[0]
            rows = [fn({k: v[i] for k, v in stacked.items()}) for i in range(n)]
            return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
        return vmap(fn, chunk_size=chunk)(dict(stacked))

    def state(self, params: Mapping[str, Tensor] | None = None) -> dict[str, Any]:
        """A model ``state_dict`` (parameters at ``params`` plus buffers) for saving."""
        p = self.params if params is None else params
        return {**{k: v.detach().cpu() for k, v in p.items()},
                **{k: v.detach().cpu() for k, v in self.buffers.items()}}


class ClassifierObjective(Objective):
    r"""Mean cross-entropy of a classifier over fixed data, as a function of its parameters.

    .. math:: L(\theta) = \frac{1}{N}\sum_{i=1}^N -\log \mathrm{softmax}(f_\theta(x_i))_{y_i}

    The model runs in eval mode: BatchNorm uses the running statistics of the
    model it was built from (the centre model) at every parameter point, and there
    is no augmentation, so the loss is deterministic. The data live on ``device``
    and are read in batches of ``batch_size``; in :meth:`batched` each data batch
    serves every parameter point of a chunk before the next batch is read.

    Args:
        model: the classifier; its current parameters become :attr:`params`.
        x, y: inputs and integer labels.
        device: where data and parameters live.
        batch_size: samples per forward pass (``None``: all at once).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(40, 10))
        >>> x, y = torch.randn(100, 1, 40), torch.randint(0, 10, (100,))
        >>> obj = ClassifierObjective(net, x, y)
        >>> 0.0 <= obj.metrics()["accuracy"] <= 1.0 and obj.metrics()["loss"] > 0
        True
    """

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, device: torch.device | str = "cpu",
                 batch_size: int | None = 1024, chunk_size: int | None = 16, train_batch: int = 128) -> None:
        super().__init__(model, device, chunk_size)
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
        if train_batch < 1:
            raise ValueError(f"train_batch = {train_batch!r}; allowed: an integer >= 1")
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.batch_size = len(x) if batch_size is None else batch_size
        self.train_batch = min(train_batch, len(x))

    @contextlib.contextmanager
    def _training_mode(self):
        self.model.train()
        try:
            yield
        finally:
            self.model.eval()

    def train_loss(self, params: Mapping[str, Tensor], generator: torch.Generator) -> Tensor:
        """Cross-entropy on ``train_batch`` samples drawn with ``generator``, the model in training
        mode (BatchNorm normalizes with the minibatch's statistics, as in training); the
        objective's running statistics are not changed."""
        idx = torch.randint(len(self.x), (self.train_batch,), generator=generator).to(self.device)
        buffers = {k: v.clone() for k, v in self.buffers.items()}  # training mode updates them in place
        with self._training_mode():
            out = functional_call(self.model, ({**params}, buffers), (self.x[idx],))
        return torch.nn.functional.cross_entropy(out, self.y[idx])

    @torch.no_grad()
    def fit_buffers(self, params: Mapping[str, Tensor], n_samples: int = 0) -> dict[str, Tensor]:
        r"""BatchNorm statistics of the network at ``params``: every layer's running mean and
        variance reset, then accumulated over the first ``n_samples`` inputs (0: all) in near-equal
        batches of at most ``batch_size``, weighted by batch size, in training mode. With :math:`b_k`
        samples in batch :math:`k`, the statistic is :math:`\sum_k b_k s_k / \sum_k b_k` over the batch
        statistics :math:`s_k` (the unbiased variance for ``running_var``), as
        ``torch.optim.swa_utils.update_bn`` computes with equal batches (Garipov et al. 2018)."""
        bns = {name: m for name, m in self.model.named_modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats}
        buffers = {k: v.clone() for k, v in self.buffers.items()}
        if not bns:
            return buffers
        for name in bns:
            prefix = f"{name}." if name else ""
            buffers[prefix + "running_mean"].zero_()
            buffers[prefix + "running_var"].fill_(1.0)
            buffers[prefix + "num_batches_tracked"].zero_()
        x = self.x[:n_samples or None]
        if len(x) < 2:
            raise ValueError(f"n_samples = {n_samples}; allowed: 0 (all) or at least 2 (a batch statistic)")
        batches = torch.tensor_split(x, -(-len(x) // self.batch_size))  # near-equal sizes, none of one sample
        momenta = {name: m.momentum for name, m in bns.items()}
        seen = 0
        try:
            with self._training_mode():
                for xb in batches:
                    for m in bns.values():  # a running average weighted by batch size
                        m.momentum = len(xb) / (seen + len(xb))
                    functional_call(self.model, ({**params}, buffers), (xb,))
                    seen += len(xb)
        finally:
            for name, m in bns.items():
                m.momentum = momenta[name]
        return buffers

    def _data(self) -> Any:
        return {"x": self.x, "y": self.y, "batch_size": self.batch_size}

    def _batches(self):
        for i in range(0, len(self.x), self.batch_size):
            yield self.x[i:i + self.batch_size], self.y[i:i + self.batch_size]

    def loss(self, params: Mapping[str, Tensor]) -> Tensor:
        total = sum(torch.nn.functional.cross_entropy(self.forward(params, xb), yb, reduction="sum")
                    for xb, yb in self._batches())
        return total / len(self.x)

    def evaluate(self, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        loss, correct = 0.0, 0.0
        for xb, yb in self._batches():
            out = self.forward(params, xb)
            loss = loss + torch.nn.functional.cross_entropy(out, yb, reduction="sum")
            correct = correct + (out.argmax(1) == yb).sum()
        return {"loss": loss / len(self.x), "accuracy": correct / len(self.x)}


class QuadraticObjective(Objective):
    r"""A quadratic :math:`L(\theta) = \tfrac12 \theta^\top A \theta + b^\top \theta`, whose
    Hessian is :math:`A` everywhere: the exact reference for curvature code.

    Args:
        A: a symmetric ``[n, n]`` matrix.
        b: the linear term (default zero).
        theta: the point (default: seeded Gaussian).

    Example:
        >>> import torch
        >>> obj = QuadraticObjective(torch.eye(3, dtype=torch.float64))
        >>> float(obj({"theta": torch.ones(3, dtype=torch.float64)}))
        1.5
    """

    def __init__(self, A: Tensor, b: Tensor | None = None, theta: Tensor | None = None,
                 device: torch.device | str = "cpu") -> None:
        if A.dim() != 2 or A.shape[0] != A.shape[1] or not torch.allclose(A, A.T):
            raise ValueError(f"A has shape {tuple(A.shape)}; allowed: a symmetric square matrix")
        model = nn.Module()
        if theta is None:
            theta = torch.randn(len(A), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        model.theta = nn.Parameter(theta.to(A.dtype).clone())
        super().__init__(model, device)
        self.A = A.to(self.device)
        self.b = torch.zeros(len(A), dtype=A.dtype, device=self.device) if b is None else b.to(self.device)

    def _data(self) -> Any:
        return {"A": self.A, "b": self.b}

    def loss(self, params: Mapping[str, Tensor]) -> Tensor:
        t = params["theta"]
        return 0.5 * t @ self.A @ t + self.b @ t


class FunctionObjective(Objective):
    r"""A loss given as a torch function of one parameter vector, :math:`L(\theta) = f(\theta)`:
    hand-made landscapes with known minima, barriers and valleys (tests, toy models).

    Args:
        fn: ``theta [n] -> scalar``, differentiable; batched by ``vmap`` like any objective.
        theta: the point (the objective's :attr:`params` are ``{"theta": theta}``).
        key: what distinguishes ``fn`` from other functions in cache keys.

    Example:
        >>> ring = FunctionObjective(lambda t: (t.norm() - 1) ** 2, torch.tensor([1.0, 0.0]), key="ring")
        >>> float(ring({"theta": torch.zeros(2)})), float(ring())
        (1.0, 0.0)
    """

    def __init__(self, fn: Any, theta: Tensor, device: torch.device | str = "cpu", key: str = "",
                 chunk_size: int | None = 64) -> None:
        model = nn.Module()
        model.theta = nn.Parameter(theta.detach().clone())
        super().__init__(model, device, chunk_size)
        self.fn, self.key = fn, key

    def _data(self) -> Any:
        return {"key": self.key}

    def loss(self, params: Mapping[str, Tensor]) -> Tensor:
        return self.fn(params["theta"])


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
