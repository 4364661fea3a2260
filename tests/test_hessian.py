"""The Hessian engine against exact answers: quadratics, dense Hessians, and PyHessian."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lsutils import pinn
from lsutils.hessian import (HessianOperator, dense_hessian, hutchinson_trace, slq_density,
                             top_eigenpairs)
from lsutils.objectives import ClassifierObjective, Objective


class Quadratic(Objective):
    """L(theta) = 1/2 theta^T A theta + b^T theta, whose Hessian is A everywhere."""

    def __init__(self, A: torch.Tensor, b: torch.Tensor) -> None:
        model = nn.Module()
        model.theta = nn.Parameter(torch.randn(len(A), dtype=A.dtype))
        super().__init__(model)
        self.A, self.b = A, b

    def loss(self, params):
        t = params["theta"]
        return 0.5 * t @ self.A @ t + self.b @ t


def spd(n: int, seed: int, spread: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.linspace(-1.0, spread, n, dtype=torch.float64)  # indefinite, distinct
    return Q @ torch.diag(lam) @ Q.T, lam


@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
def test_quadratic_eigen_trace_and_esd_are_exact(method):
    A, lam = spd(30, 0)
    obj = Quadratic(A, torch.randn(30, dtype=torch.float64))
    torch.testing.assert_close(dense_hessian(obj), A, rtol=0, atol=1e-12)
    op = HessianOperator(obj, method=method)
    eig = top_eigenpairs(op, k=3, tol=1e-10, max_steps=30)
    np.testing.assert_allclose(eig.values, lam.flip(0)[:3].numpy(), rtol=1e-10)
    for v, u in zip(eig.vectors, torch.linalg.eigh(A)[1].flip(1).T):
        assert abs(float(v["theta"] @ u)) == pytest.approx(1.0, abs=1e-8)
    low = top_eigenpairs(op, k=2, tol=1e-10, max_steps=30, which="smallest")
    np.testing.assert_allclose(low.values, lam[:2].numpy(), rtol=1e-9, atol=1e-9)
    # Hutchinson with Rademacher probes is exact for a diagonal Hessian: v_i^2 = 1
    D = torch.diag(lam)
    tr = hutchinson_trace(HessianOperator(Quadratic(D, torch.zeros(30, dtype=torch.float64))), 5)
    assert all(s == pytest.approx(float(lam.sum()), abs=1e-10) for s in tr.samples)
    # SLQ with m = n steps: the nodes are the eigenvalues, each run's weights sum to 1,
    # and the quadrature integrates x^p exactly: sum w theta^p = q^T A^p q for p < 2m
    esd = slq_density(op, n_runs=2, n_steps=30, seed=5)
    for nodes, w in zip(esd.nodes, esd.weights):
        np.testing.assert_allclose(np.sort(nodes), lam.numpy(), atol=1e-9)
        assert w.sum() == pytest.approx(1.0, abs=1e-12)
    g = torch.Generator().manual_seed(5)
    q = op.new_vector(g, "rademacher")
    q = q / q.norm()
    for p in range(4):
        exact = float(q @ torch.linalg.matrix_power(A, p) @ q)
        assert float((esd.weights[0] * esd.nodes[0] ** p).sum()) == pytest.approx(exact, rel=1e-9, abs=1e-12)
    grid = np.linspace(-3, 12, 3001)
    assert np.trapezoid(esd.density(grid, 0.2), grid) == pytest.approx(1.0, abs=1e-3)


def mlp_classifier(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 4)).double()
    x = torch.randn(64, 6, dtype=torch.float64)
    y = torch.randint(0, 4, (64,))
    return ClassifierObjective(model, x, y, batch_size=20)


def small_pinn():
    torch.manual_seed(0)
    problem = pinn.ConvectionProblem(5.0)
    pts = problem.sample(64, 16, 8, seed=0, dtype=torch.float64)
    return pinn.PinnObjective(pinn.PinnMLP(6, 2).double(), problem, pts)


@pytest.mark.parametrize("make", [mlp_classifier, small_pinn], ids=["classifier", "pinn"])
def test_small_models_match_the_dense_hessian(make):
    obj = make()
    H = dense_hessian(obj)
    torch.testing.assert_close(H, H.T, rtol=0, atol=1e-10)
    exact = torch.linalg.eigvalsh(H).flip(0)
    g = torch.Generator().manual_seed(0)
    v = torch.randn(len(H), generator=g, dtype=torch.float64)
    for method in ("double_backward", "forward_over_reverse"):
        torch.testing.assert_close(HessianOperator(obj, method=method).matvec(v), H @ v,
                                   rtol=1e-9, atol=1e-11)
    op = HessianOperator(obj)
    eig = top_eigenpairs(op, k=4, tol=1e-8, max_steps=len(H))
    np.testing.assert_allclose(eig.values, exact[:4].numpy(), rtol=1e-4)
    tr = hutchinson_trace(op, n_probes=200, seed=1)
    assert abs(tr.mean - float(H.trace())) <= 3 * tr.stderr, (tr, float(H.trace()))
    esd = slq_density(op, n_runs=2, n_steps=20, seed=0)
    assert np.allclose(esd.weights.sum(1), 1.0)
    # the extreme nodes converge to the extreme eigenvalues first
    assert esd.nodes.max() == pytest.approx(float(exact[0]), rel=1e-6)
    assert esd.nodes.min() == pytest.approx(float(exact[-1]), rel=1e-3, abs=1e-6)


def test_top_eigenvalue_agrees_with_pyhessian():
    from pyhessian import hessian as PyHessian

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    x, y = torch.randn(128, 10), torch.randint(0, 3, (128,))
    ours = top_eigenpairs(HessianOperator(ClassifierObjective(model, x, y)), k=1, tol=1e-6).values[0]
    torch.manual_seed(1)
    ref = PyHessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
    theirs = ref.eigenvalues(maxIter=1000, tol=1e-7, top_n=1)[0][0]
    assert ours == pytest.approx(theirs, rel=0.01)


def test_bad_arguments():
    obj = mlp_classifier()
    with pytest.raises(ValueError, match="method = 'exact'; allowed: double_backward, forward_over_reverse"):
        HessianOperator(obj, method="exact")
    op = HessianOperator(obj)
    with pytest.raises(ValueError, match="k = 0"):
        top_eigenpairs(op, k=0)
    with pytest.raises(ValueError, match="n_probes = 1"):
        hutchinson_trace(op, n_probes=1)


def test_outliers_are_counted_at_the_largest_log_gap():
    from lsutils.curvature import count_outliers

    rng = np.random.default_rng(0)
    bulk = rng.uniform(0.1, 1.0, 30)
    outliers = rng.uniform(20.0, 80.0, 10)  # C = 10 classes, as Fort & Ganguli find
    assert count_outliers(np.concatenate([bulk, outliers])) == 10
    assert count_outliers([5.0, -1.0]) == 1 and count_outliers([]) == 0


def test_curvature_report_is_exact_on_a_quadratic_and_cached(tmp_path):
    from lsutils.curvature import CurvatureConfig, analyze_or_load, density_on_grid

    A, lam = spd(25, 1)
    obj = Quadratic(A, torch.zeros(25, dtype=torch.float64))
    cfg = CurvatureConfig(top_k=4, tol=1e-10, max_steps=25, trace_probes=400, slq_runs=2,
                          slq_steps=25, save_vectors=2)
    rep, loaded = analyze_or_load(tmp_path / "q.pt", obj, cfg, extra={"n_samples": 0})
    assert not loaded and rep.num_params == 25 and len(rep.vectors) == 2
    np.testing.assert_allclose(rep.eigenvalues, lam.flip(0)[:4].numpy(), rtol=1e-10)
    assert abs(rep.trace - float(lam.sum())) <= 3 * rep.trace_stderr
    again, loaded = analyze_or_load(tmp_path / "q.pt", obj, cfg, extra={"n_samples": 0})
    assert loaded and again.eigenvalues == rep.eigenvalues
    torch.testing.assert_close(again.vectors[0]["theta"], rep.vectors[0]["theta"])
    np.testing.assert_array_equal(again.slq_nodes, rep.slq_nodes)
    _, loaded = analyze_or_load(tmp_path / "q.pt", obj, cfg, extra={"n_samples": 5})
    assert not loaded  # other settings: recomputed
    grid, dens = density_on_grid(rep)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=0.02)


def test_magnitude_ordering_finds_the_largest_absolute_eigenvalues():
    A, lam = spd(20, 2, spread=3.0)
    lam_mod = lam.clone()
    lam_mod[0] = -8.0  # the most negative eigenvalue now has the largest magnitude
    Q = torch.linalg.eigh(A)[1]
    B = Q @ torch.diag(lam_mod) @ Q.T
    op = HessianOperator(Quadratic(B, torch.zeros(20, dtype=torch.float64)))
    eig = top_eigenpairs(op, k=2, tol=1e-10, max_steps=20, which="magnitude")
    np.testing.assert_allclose(eig.values, [-8.0, 3.0], rtol=1e-9)


def test_hutchpp_is_exact_for_low_rank_and_unbiased():
    from lsutils.hessian import hutchpp_trace

    g = torch.Generator().manual_seed(3)
    U = torch.randn(40, 4, generator=g, dtype=torch.float64)
    low = U @ torch.diag(torch.tensor([9.0, 5.0, -2.0, 1.0], dtype=torch.float64)) @ U.T
    op = HessianOperator(Quadratic(low, torch.zeros(40, dtype=torch.float64)))
    tr = hutchpp_trace(op, n_products=14, sketch=5)  # rank 4 < sketch: the sketch holds all of H
    assert tr.mean == pytest.approx(float(low.trace()), rel=1e-10) and tr.stderr < 1e-8
    A, lam = spd(60, 4, spread=50.0)
    A = A + 200.0 * torch.outer(A[0], A[0]) / A[0].norm() ** 2  # one dominant outlier
    op = HessianOperator(Quadratic(A, torch.zeros(60, dtype=torch.float64)))
    pp = hutchpp_trace(op, n_products=60, seed=1)
    plain = hutchinson_trace(op, n_probes=60, seed=1)
    exact = float(A.trace())
    assert abs(pp.mean - exact) <= 3 * pp.stderr
    assert pp.stderr < plain.stderr  # the outlier's variance is gone
    with pytest.raises(ValueError, match="sketch"):
        hutchpp_trace(op, n_products=5, sketch=2)
