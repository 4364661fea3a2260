r"""Curvature of any objective: Hessian-vector products, top eigenpairs, trace, and ESD.

Everything works on an :class:`~lsutils.objectives.Objective` (classifier or PINN)
through one linear operator :math:`v \mapsto Hv`, where
:math:`H = \nabla^2_\theta L(\theta)` at the objective's parameters:

- :class:`HessianOperator` takes products either by *double backward* reusing one
  gradient graph (:math:`Hv = \nabla_\theta (\nabla_\theta L \cdot v)`, PyHessian's
  way) or *forward-over-reverse* (``torch.func.jvp`` of ``torch.func.grad``), and
  counts them.
- :func:`top_eigenpairs`: Lanczos with full reorthogonalisation (Lanczos 1950;
  Golub & Van Loan, *Matrix Computations*, 10.1) until the top-k Ritz pairs have
  residuals :math:`\lVert H y - \theta y \rVert \le \text{tol}\,|\theta|`.
- :func:`hutchinson_trace`: :math:`\mathrm{tr}\,H = \mathbb{E}[v^\top H v]` for
  Rademacher :math:`v` (Hutchinson 1990), with the standard error of the mean;
  :func:`hutchpp_trace` deflates a sketched top subspace first (Hutch++), for the
  same standard error in fewer products when outliers dominate.
- :func:`slq_density`: stochastic Lanczos quadrature (Golub & Meurant; Ghorbani,
  Krishnan & Xiao 2019): per run, the Ritz values of an m-step Lanczos from a
  random unit vector are quadrature nodes, the squared first components of their
  eigenvectors the weights; a Gaussian-broadened sum gives the spectral density.
- :func:`dense_hessian`: the full matrix, for small models and tests.

Example:
    >>> import torch
    >>> from lsutils.objectives import QuadraticObjective
    >>> A = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))  # eigenvalues 1..10, trace 55
    >>> op = HessianOperator(QuadraticObjective(A))
    >>> eig = top_eigenpairs(op, k=3, tol=1e-8)
    >>> [round(v, 6) for v in eig.values], eig.converged
    ([10.0, 9.0, 8.0], True)
    >>> round(hutchpp_trace(op, n_products=30, seed=0).mean, 6)  # exact: rank 10 < sketch
    55.0
    >>> esd = slq_density(op, n_runs=2, n_steps=10, seed=0)
    >>> round(float(esd.moment(1)), 6)  # the mean eigenvalue, tr H / n
    5.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch
from torch import Tensor
from torch.func import grad, jvp

from .directions import flatten, unflatten
from .objectives import Objective, Params

__all__ = ["HessianOperator", "Eigenpairs", "TraceEstimate", "SpectralDensity", "top_eigenpairs",
           "hutchinson_trace", "hutchpp_trace", "slq_density", "dense_hessian", "lanczos", "METHODS"]

METHODS = ("double_backward", "forward_over_reverse")


class HessianOperator:
    """The Hessian of an objective at a point, as a matrix-free linear operator on flat vectors.

    Args:
        objective: the loss over parameters.
        params: the point (default: ``objective.params``).
        method: ``double_backward`` (one gradient graph, reused by every product) or
            ``forward_over_reverse`` (``jvp`` of ``grad``, no stored graph).

    Attributes:
        dim: number of parameters :math:`n`.
        num_products: Hessian-vector products taken so far.
    """

    def __init__(self, objective: Objective, params: Mapping[str, Tensor] | None = None,
                 method: str = "double_backward") -> None:
        if method not in METHODS:
            raise ValueError(f"method = {method!r}; allowed: {', '.join(METHODS)}")
        self.objective = objective
        self.method = method
        base = objective.params if params is None else params
        self.names = list(base)
        self.shapes = [base[k].shape for k in self.names]
        self.sizes = [base[k].numel() for k in self.names]
        self.params: Params = {k: base[k].detach() for k in self.names}
        bad = [k for k in self.names if not bool(torch.isfinite(self.params[k]).all())]
        if bad:
            raise ValueError(f"params[{bad[0]!r}] holds NaN or infinite entries; allowed: finite weights "
                             "(a diverged model?)")
        ref = self.params[self.names[0]]
        self.dtype, self.device = ref.dtype, ref.device
        self.dim = sum(self.sizes)
        self.num_products = 0
        self._graph: tuple[list[Tensor], list[Tensor]] | None = None

    # -- flat <-> dict ---------------------------------------------------------------
    def flatten(self, d: Mapping[str, Tensor]) -> Tensor:
        return flatten(d, self.names)

    def unflatten(self, v: Tensor) -> Params:
        return unflatten(v, self.params)

    # -- products ----------------------------------------------------------------------
    def _gradient_graph(self) -> tuple[list[Tensor], list[Tensor]]:
        if self._graph is None:
            leaves = [self.params[k].clone().requires_grad_(True) for k in self.names]
            loss = self.objective.loss(dict(zip(self.names, leaves)))
            grads = torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, leaves)]
            self._graph = (leaves, list(grads))
        return self._graph

    def matvec(self, v: Tensor) -> Tensor:
        """:math:`Hv` for a flat vector ``v`` of length :attr:`dim`."""
        self.num_products += 1
        if self.method == "double_backward":
            leaves, grads = self._gradient_graph()
            outs = [t.view(s) for t, s in zip(v.split(self.sizes), self.shapes)]
            hv = torch.autograd.grad(grads, leaves, grad_outputs=outs, retain_graph=True,
                                     allow_unused=True)
            return torch.cat([(torch.zeros_like(p) if h is None else h).reshape(-1)
                              for h, p in zip(hv, leaves)]).detach()
        _, hv = jvp(grad(self.objective.loss), (self.params,), (self.unflatten(v),))
        return self.flatten(hv).detach()

    def as_linear_operator(self) -> "scipy.sparse.linalg.LinearOperator":  # noqa: F821
        """The same operator for SciPy (``eigsh``, ``cg``, ``lobpcg``): NumPy vectors in and out,
        in this operator's dtype, each product counted in :attr:`num_products`.

        Example:
            >>> import torch
            >>> from scipy.sparse.linalg import eigsh
            >>> from lsutils.objectives import QuadraticObjective
            >>> op = HessianOperator(QuadraticObjective(torch.diag(torch.arange(1.0, 6.0, dtype=torch.float64))))
            >>> sorted(round(float(v), 6) for v in eigsh(op.as_linear_operator(), k=2, which="LA")[0])
            [4.0, 5.0]
        """
        from scipy.sparse.linalg import LinearOperator

        def matvec(v: np.ndarray) -> np.ndarray:
            x = torch.as_tensor(np.asarray(v).reshape(-1), dtype=self.dtype, device=self.device)
            return self.matvec(x).cpu().numpy()

        return LinearOperator((self.dim, self.dim), matvec=matvec, rmatvec=matvec,
                              dtype=torch.empty((), dtype=self.dtype).numpy().dtype)

    def matmat(self, vs: Tensor) -> Tensor:
        """:math:`H V` for vectors stacked as rows, ``[m, dim]``."""
        return torch.stack([self.matvec(v) for v in vs])

    def new_vector(self, generator: torch.Generator, kind: str = "gaussian") -> Tensor:
        """A random vector (``gaussian`` or ``rademacher``) from a CPU generator."""
        if kind == "rademacher":
            v = torch.randint(0, 2, (self.dim,), generator=generator, dtype=torch.int64) * 2 - 1
        elif kind == "gaussian":
            v = torch.randn(self.dim, generator=generator, dtype=torch.float64)
        else:
            raise ValueError(f"kind = {kind!r}; allowed: gaussian, rademacher")
        return v.to(self.device, self.dtype)


class _Krylov:
    r"""An orthonormal basis :math:`Q` built by Lanczos passes, and :math:`T = Q^\top H Q`.

    Every product :math:`w = H q_j` gives column :math:`j` of :math:`T` exactly (its
    projections on the whole basis, with full reorthogonalisation, twice) and leaves the
    part of :math:`w` outside the basis as the *open remainder* :math:`r_j`. Continuing a
    pass takes :math:`r_j / \lVert r_j \rVert` as the next vector, which closes
    :math:`r_j`; a fresh start vector (a new pass) leaves it open. For a Ritz pair
    :math:`(\theta, y = Q^\top s)` of :math:`T`, the residual is then exactly
    :math:`H y - \theta y = \sum_{j\,\text{open}} s_j r_j`.
    """

    def __init__(self, op: HessianOperator, limit: int) -> None:
        self.op = op
        self.limit = limit
        self.Q = torch.empty(limit, op.dim, dtype=op.dtype, device=op.device)
        self.m = 0  # basis vectors
        self.cols: list[Tensor] = []  # cols[j] = Q[:j+1] H q_j
        self.open: dict[int, Tensor] = {}  # j -> remainder r_j outside the basis
        self.scale = 0.0  # largest |T_ij| seen: the operator's scale, for breakdown tests

    def breakdown(self, norm: float, rel: float = 1e3) -> bool:
        """A remainder this small (``rel`` roundings of the operator's scale) means the basis
        spans an invariant subspace: the pass can go no further."""
        return norm <= rel * torch.finfo(self.op.dtype).eps * max(self.scale, 1e-30)

    def add(self, v: Tensor, closes: int | None = None) -> bool:
        """Append ``v`` orthonormalised against the basis; False when nothing of it is left.
        ``closes``: ``v`` is the open remainder of that basis vector (the pass goes on)."""
        if self.m >= self.limit:
            return False
        Q = self.Q[:self.m]
        v0 = torch.linalg.vector_norm(v)
        for _ in range(2):
            v = v - Q.T @ (Q @ v)
        n = torch.linalg.vector_norm(v)
        if not n > 1e-8 * v0:
            return False
        q = v / n
        self.Q[self.m] = q
        self.m += 1
        if closes is not None:
            del self.open[closes]  # now inside the basis
        for j, r in self.open.items():  # the others stay open: residuals remain exact
            self.open[j] = r - q * torch.dot(q, r)
        return True

    def step(self) -> Tensor:
        """One product with the newest vector; returns its remainder (outside the basis)."""
        j = self.m - 1
        w = self.op.matvec(self.Q[j])
        Q = self.Q[:self.m]
        c = Q @ w
        w = w - Q.T @ c
        c2 = Q @ w  # full reorthogonalisation: twice is enough
        w = w - Q.T @ c2
        col = c + c2
        self.cols.append(col)
        self.scale = max(self.scale, float(col.abs().max()))
        self.open[j] = w
        return w

    def projected(self) -> Tensor:
        """:math:`T = Q^\top H Q`, ``[m, m]``, symmetric, in float64."""
        T = torch.zeros(self.m, self.m, dtype=torch.float64, device=self.op.device)
        for j, col in enumerate(self.cols):
            T[:j + 1, j] = col.double()
        return torch.triu(T) + torch.triu(T, 1).T

    def residuals(self, S: Tensor) -> Tensor:
        r""":math:`\lVert H y - \theta y \rVert` for the Ritz vectors with coefficients ``S`` [m, k]."""
        if not self.open:
            return torch.zeros(S.shape[1], dtype=torch.float64, device=S.device)
        idx = list(self.open)
        R = torch.stack([self.open[j] for j in idx]).double()
        return torch.linalg.vector_norm(R.T @ S[idx], dim=0)


def lanczos(op: HessianOperator, v0: Tensor, n_steps: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``n_steps`` of Lanczos from ``v0`` with full reorthogonalisation (one pass).

    Returns:
        ``alpha`` [m], ``beta`` [m] (``beta[-1]`` is the residual norm after the last
        step), the orthonormal basis ``Q`` [m, dim] and the last residual vector;
        ``m <= n_steps`` (the process stops early on an invariant subspace).
    """
    kr = _Krylov(op, min(n_steps, op.dim))
    kr.add(v0)
    while True:
        r = kr.step()
        b = torch.linalg.vector_norm(r)
        if kr.breakdown(float(b), rel=10.0) or not kr.add(r, closes=kr.m - 1):
            break
    T = kr.projected()
    beta = torch.cat([torch.diagonal(T, 1), b.double().reshape(1)])
    return torch.diagonal(T).clone(), beta, kr.Q[:kr.m].clone(), r


def _tridiag_eig(alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    T = torch.diag(alpha.double())
    if len(alpha) > 1:
        off = beta[:-1].double()
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    return torch.linalg.eigh(T)


@dataclass
class Eigenpairs:
    """Top eigenvalues (descending), eigenvectors as parameter dicts, and the cost.

    ``converged`` is True only when every returned pair meets the tolerance and a fresh
    start vector, orthogonal to everything found, changed none of them (or the whole space
    was spanned); ``passes`` counts the start vectors used.
    """

    values: list[float]
    vectors: list[Params]
    residuals: list[float]
    num_products: int
    converged: bool
    passes: int = 1


def top_eigenpairs(op: HessianOperator, k: int = 1, *, tol: float = 1e-3, max_steps: int = 200,
                   seed: int = 0, which: str = "largest", verify_steps: int = 10) -> Eigenpairs:
    r"""The ``k`` extreme eigenpairs by Lanczos, with their multiplicities.

    Lanczos from one start vector :math:`v` sees each eigenvalue once: its Krylov space
    holds only the component of :math:`v` in each eigenspace, so a repeated eigenvalue
    shows up once and the space becomes invariant (the recursion breaks down) after as
    many steps as there are distinct eigenvalues. Here a breakdown is never taken for
    convergence: the search goes on from a fresh random vector orthogonal to everything
    found (a new *pass*), whose Krylov space holds the copies the earlier passes missed.
    The Ritz pairs are those of :math:`Q^\top H Q` over all passes, with exact residuals
    (see :class:`_Krylov`). Once the top ``k`` pairs meet

    .. math:: \lVert H y_i - \theta_i y_i \rVert \le \text{tol}\,|\theta_i|,

    one more pass of up to ``verify_steps`` products from a fresh vector checks them: if
    the top ``k`` values move (a missed copy), the search goes on; if not, the pairs it
    checked are returned as converged. Restarts rather than block Lanczos: the cost is that of plain
    Lanczos when nothing is repeated (one verifying pass more), and any multiplicity is
    found, where a block of size ``p`` finds at most ``p`` copies.

    Args:
        op: the Hessian operator.
        k: how many eigenpairs.
        tol: relative residual tolerance.
        max_steps: cap on the basis size (= products).
        seed: the start vectors' seed.
        which: ``largest`` or ``smallest`` (algebraic), or ``magnitude`` (largest
            :math:`|\lambda|`, what power iteration with deflation converges to).
        verify_steps: products of the verifying pass (0: no verification).

    Example:
        >>> import torch
        >>> from lsutils.objectives import QuadraticObjective
        >>> obj = QuadraticObjective(torch.diag(torch.tensor([5., 5., 5., 1., 0., 0.], dtype=torch.float64)))
        >>> eig = top_eigenpairs(HessianOperator(obj), k=3, tol=1e-8)
        >>> [round(v, 6) for v in eig.values], eig.converged
        ([5.0, 5.0, 5.0], True)
    """
    if k < 1 or k > op.dim:
        raise ValueError(f"k = {k}; allowed: 1 <= k <= {op.dim} (the number of parameters)")
    if max_steps < k:
        raise ValueError(f"max_steps = {max_steps}; allowed: at least k = {k}")
    if which not in ("largest", "smallest", "magnitude"):
        raise ValueError(f"which = {which!r}; allowed: largest, smallest, magnitude")
    if verify_steps < 0:
        raise ValueError(f"verify_steps = {verify_steps}; allowed: an integer >= 0")
    start = op.num_products
    g = torch.Generator().manual_seed(seed)
    kr = _Krylov(op, min(max_steps, op.dim))
    kr.add(op.new_vector(g))
    passes, pass_len, verifying, verified = 1, 0, False, None
    converged = False
    theta = S = order = res = None
    while True:
        r = kr.step()
        pass_len += 1
        broke = kr.breakdown(float(torch.linalg.vector_norm(r)))
        ok = False
        if kr.m >= k:
            theta, S = torch.linalg.eigh(kr.projected())
            key = theta.abs() if which == "magnitude" else theta
            order = torch.argsort(key, descending=(which != "smallest"))[:k]
            res = kr.residuals(S[:, order])
            ok = bool((res <= tol * theta[order].abs().clamp_min(1e-30)).all())
        if verifying and not torch.allclose(theta[order], verified[0], rtol=tol,
                                            atol=tol * float(verified[0].abs().max())):
            verifying = False  # the fresh pass found more: search on
        if kr.m >= op.dim:  # the whole space: the Ritz pairs are the eigenpairs
            converged, verifying = ok, False
            break
        if verifying and (broke or pass_len >= verify_steps):
            converged = True  # the fresh pass moved none of the pairs it was checking
            break
        if not (broke or (ok and not verifying)):
            if kr.m >= kr.limit:
                break
            if kr.add(r, closes=kr.m - 1):
                continue  # the pass goes on
        # the pass ended: an invariant subspace, or the top k met the tolerance
        if ok and verify_steps == 0:
            converged = True
            break
        if ok and not verifying:  # check these pairs with a fresh pass
            verifying, verified = True, (theta[order].clone(), S[:, order].clone(), kr.m, res.clone())
        if kr.m >= kr.limit or not kr.add(op.new_vector(g)):
            break
        passes, pass_len = passes + 1, 0
    values, coeffs, m, res = verified if verifying else (theta[order], S[:, order], kr.m, res)
    vecs = (coeffs.T @ kr.Q[:m].double()).to(op.dtype)
    return Eigenpairs(values=[float(v) for v in values],
                      vectors=[{k_: t.clone() for k_, t in op.unflatten(v).items()} for v in vecs],
                      residuals=[float(x) for x in res], num_products=op.num_products - start,
                      converged=converged, passes=passes)


@dataclass
class TraceEstimate:
    """Hutchinson's estimate: the mean of ``v^T H v`` over probes and its standard error."""

    mean: float
    stderr: float
    n_probes: int
    samples: list[float] = field(repr=False, default_factory=list)


def hutchinson_trace(op: HessianOperator, n_probes: int = 100, *, seed: int = 0) -> TraceEstimate:
    r"""``tr H`` as the mean of :math:`v^\top H v` over ``n_probes`` Rademacher vectors.

    The standard error is the sample standard deviation over :math:`\sqrt{n}`.
    """
    if n_probes < 2:
        raise ValueError(f"n_probes = {n_probes}; allowed: an integer >= 2 (for a standard error)")
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n_probes):
        v = op.new_vector(g, "rademacher")
        samples.append(float(torch.dot(v, op.matvec(v))))
    arr = np.asarray(samples)
    return TraceEstimate(float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(n_probes)), n_probes,
                         samples)


def hutchpp_trace(op: HessianOperator, n_products: int = 60, *, sketch: int | None = None,
                  seed: int = 0) -> TraceEstimate:
    r"""Hutch++ (Meyer, Musco, Musco & Woodruff 2021): the trace to a given standard error
    with fewer products when a few eigenvalues dominate, as outliers do in network Hessians.

    With a Rademacher sketch :math:`S \in \{\pm1\}^{n \times k}` and :math:`Q = \mathrm{orth}(HS)`,

    .. math:: \mathrm{tr}\,H = \mathrm{tr}(Q^\top H Q) + \mathrm{tr}\big((I - QQ^\top) H (I - QQ^\top)\big),

    the first term exactly (``k`` more products), the second by Hutchinson with the
    remaining ``n_products - 2k`` probes projected off :math:`Q`. The standard error is
    that of the second term. A Hessian of rank at most ``k`` gives the exact trace.

    Args:
        n_products: Hessian-vector products in all.
        sketch: ``k`` (default ``n_products // 3``).
    """
    k = n_products // 3 if sketch is None else sketch
    m = n_products - 2 * k
    if k < 1 or m < 2:
        raise ValueError(f"n_products = {n_products}, sketch = {sketch}; allowed: sketch >= 1 and "
                         "n_products - 2 * sketch >= 2")
    g = torch.Generator().manual_seed(seed)
    S = torch.stack([op.new_vector(g, "rademacher") for _ in range(k)])
    Q, _ = torch.linalg.qr(op.matmat(S).T)  # [n, k]
    exact = float((Q.T * op.matmat(Q.T)).sum())
    samples = []
    for _ in range(m):
        v = op.new_vector(g, "rademacher")
        v = v - Q @ (Q.T @ v)
        samples.append(float(torch.dot(v, op.matvec(v))))
    arr = np.asarray(samples)
    return TraceEstimate(exact + float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(m)), n_products,
                         [exact + x for x in samples])


@dataclass
class SpectralDensity:
    """SLQ quadrature: ``nodes`` and ``weights`` per run ([runs, m]), and helpers."""

    nodes: np.ndarray
    weights: np.ndarray
    num_products: int

    def density(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        """Gaussian-broadened density on ``grid``, averaged over runs (integrates to ~1)."""
        x = np.asarray(grid, dtype=float)[:, None]
        out = np.zeros(len(grid))
        for nodes, w in zip(self.nodes, self.weights):
            out += (w[None, :] * np.exp(-0.5 * ((x - nodes[None, :]) / sigma) ** 2)).sum(1)
        return out / (len(self.nodes) * sigma * math.sqrt(2 * math.pi))

    def moment(self, p: int) -> float:
        """Estimate of :math:`\\frac1n \\mathrm{tr}\\, H^p` (exact per run for p < 2m)."""
        return float(np.mean([(w * n ** p).sum() for n, w in zip(self.nodes, self.weights)]))


def slq_density(op: HessianOperator, n_runs: int = 3, n_steps: int = 80, *, seed: int = 0) -> SpectralDensity:
    """Stochastic Lanczos quadrature of the eigenvalue density of ``H``.

    Each run starts Lanczos from a random unit (Rademacher) vector; the Ritz values
    of the m-step tridiagonal matrix are the nodes and the squared first components
    of its eigenvectors the weights (they sum to 1 per run).
    """
    if n_runs < 1 or n_steps < 1:
        raise ValueError(f"n_runs = {n_runs}, n_steps = {n_steps}; allowed: integers >= 1")
    g = torch.Generator().manual_seed(seed)
    start = op.num_products
    m = min(n_steps, op.dim)
    nodes, weights = np.full((n_runs, m), np.nan), np.zeros((n_runs, m))
    for r in range(n_runs):
        alpha, beta, _, _ = lanczos(op, op.new_vector(g, "rademacher"), n_steps)
        theta, S = _tridiag_eig(alpha, beta)
        j = len(theta)
        nodes[r, :j] = theta.cpu().numpy()
        weights[r, :j] = (S[0] ** 2).cpu().numpy()
        nodes[r, j:] = nodes[r, j - 1]  # an early invariant subspace: pad with zero weight
    return SpectralDensity(nodes, weights, op.num_products - start)


def dense_hessian(objective: Objective, params: Mapping[str, Tensor] | None = None) -> Tensor:
    """The full ``[n, n]`` Hessian (flattened in parameter order): for small models only."""
    op = HessianOperator(objective, params)
    flat = op.flatten(op.params)
    return torch.func.hessian(lambda v: objective.loss(op.unflatten(v)))(flat).detach()
