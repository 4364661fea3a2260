"""The Hessian engine against exact answers: quadratics, dense Hessians, and PyHessian."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lsutils import pinn
from lsutils.hessian import (HessianOperator, dense_hessian, hutchinson_trace, slq_density,
                             top_eigenpairs)
from lsutils.objectives import ClassifierObjective, QuadraticObjective


def Quadratic(A: torch.Tensor, b: torch.Tensor) -> QuadraticObjective:
    """L(theta) = 1/2 theta^T A theta + b^T theta, whose Hessian is A everywhere."""
    return QuadraticObjective(A, b, theta=torch.randn(len(A), dtype=A.dtype))


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
    rep = analyze_or_load(tmp_path / "q.pt", obj, cfg, extra={"n_samples": 0})
    assert not rep.loaded and rep.num_params == 25 and len(rep.vectors) == 2
    np.testing.assert_allclose(rep.eigenvalues, lam.flip(0)[:4].numpy(), rtol=1e-10)
    assert abs(rep.trace - float(lam.sum())) <= 3 * rep.trace_stderr
    again = analyze_or_load(tmp_path / "q.pt", obj, cfg, extra={"n_samples": 0})
    assert again.loaded and again.eigenvalues == rep.eigenvalues
    torch.testing.assert_close(again.vectors[0]["theta"], rep.vectors[0]["theta"])
    np.testing.assert_array_equal(again.slq_nodes, rep.slq_nodes)
    assert not analyze_or_load(tmp_path / "q.pt", obj, cfg, extra={"n_samples": 5}).loaded  # other settings: recomputed
    # a retrained model (other weights, same settings and path): recomputed, not the old report
    moved = QuadraticObjective(2 * A, theta=obj.params["theta"])
    fresh = analyze_or_load(tmp_path / "q.pt", moved, cfg, extra={"n_samples": 5})
    assert not fresh.loaded
    np.testing.assert_allclose(fresh.eigenvalues, 2 * lam.flip(0)[:4].numpy(), rtol=1e-10)
    shifted = QuadraticObjective(2 * A, theta=obj.params["theta"] + 1)
    assert not analyze_or_load(tmp_path / "q.pt", shifted, cfg, extra={"n_samples": 5}).loaded
    # a later chapter reading the report checks that it belongs to the model it holds
    from lsutils.curvature import load_report
    assert load_report(tmp_path / "q.pt", shifted).eigenvalues == pytest.approx(fresh.eigenvalues)
    with pytest.raises(ValueError, match="computed for other weights"):
        load_report(tmp_path / "q.pt", moved)
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


def _rotated(lam: list[float], seed: int = 0) -> QuadraticObjective:
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(lam), len(lam), generator=g, dtype=torch.float64))
    A = Q @ torch.diag(torch.tensor(lam, dtype=torch.float64)) @ Q.T
    return QuadraticObjective((A + A.T) / 2)


@pytest.mark.parametrize("which, k, want", [
    ("largest", 3, [5.0, 5.0, 5.0]),
    ("largest", 5, [5.0, 5.0, 5.0, 1.0, 0.0]),
    ("smallest", 4, [0.0, 0.0, 0.0, 0.0]),
    ("magnitude", 4, [5.0, 5.0, 5.0, 1.0]),
])
def test_repeated_eigenvalues_of_a_quadratic_are_found(which, k, want):
    """(5, 5, 5, 1, 0 x 16): one start vector's Krylov space is 3-dimensional and sees 5 once."""
    obj = _rotated([5, 5, 5, 1] + [0] * 16)
    eig = top_eigenpairs(HessianOperator(obj), k=k, tol=1e-8, max_steps=20, which=which)
    np.testing.assert_allclose(eig.values, want, atol=1e-9)
    assert eig.converged and eig.passes > 1
    A = obj.A
    for lam, v in zip(eig.values, eig.vectors):  # each returned pair is an eigenpair
        u = v["theta"]
        assert float(torch.linalg.vector_norm(A @ u - lam * u)) < 1e-8
    V = torch.stack([v["theta"] for v in eig.vectors])
    torch.testing.assert_close(V @ V.T, torch.eye(k, dtype=torch.float64), atol=1e-8, rtol=0)


def test_softmax_null_space_is_found_on_a_classifier():
    """The softmax shift gives a linear classifier a zero eigenvalue of multiplicity >= features + 1."""
    torch.manual_seed(0)
    obj = ClassifierObjective(nn.Linear(4, 3).double(), torch.randn(50, 4, dtype=torch.float64),
                              torch.randint(0, 3, (50,)))
    dense = torch.linalg.eigvalsh(dense_hessian(obj))
    assert int((dense.abs() < 1e-12).sum()) >= 5
    eig = top_eigenpairs(HessianOperator(obj), k=3, which="smallest", tol=1e-8, max_steps=15)
    np.testing.assert_allclose(eig.values, dense[:3].numpy(), atol=1e-10)
    assert eig.converged
    top = top_eigenpairs(HessianOperator(obj), k=4, tol=1e-8, max_steps=15)
    np.testing.assert_allclose(top.values, dense.flip(0)[:4].numpy(), rtol=1e-8)
    # too few products to span the null space: the answer is not claimed to be converged
    short = top_eigenpairs(HessianOperator(obj), k=3, which="smallest", tol=1e-8, max_steps=12)
    assert not short.converged


def test_a_missed_copy_without_breakdown_is_found_by_the_verifying_pass():
    """Distinct eigenvalues below a doubled top one: the first pass converges on one copy of
    the top eigenvalue without any breakdown; the verifying pass finds the second."""
    lam = [10.0, 10.0, 6.0] + list(np.linspace(0.5, 1.0, 57))
    obj = _rotated(lam, seed=3)
    eig = top_eigenpairs(HessianOperator(obj), k=2, tol=1e-8, max_steps=60)
    np.testing.assert_allclose(eig.values, [10.0, 10.0], rtol=1e-8)
    assert eig.converged and eig.passes >= 2
    unverified = top_eigenpairs(HessianOperator(obj), k=2, tol=1e-8, max_steps=60, verify_steps=0)
    assert unverified.values[1] < 9.0  # what a single pass returns


def test_scipy_eigsh_on_the_operator_agrees():
    from scipy.sparse.linalg import eigsh

    A, lam = spd(40, 2)
    op = HessianOperator(Quadratic(A, torch.zeros(40, dtype=torch.float64)))
    theirs = np.sort(eigsh(op.as_linear_operator(), k=4, which="LA", tol=1e-12)[0])[::-1]
    ours = top_eigenpairs(op, k=4, tol=1e-10, max_steps=40).values
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)
    np.testing.assert_allclose(ours, np.sort(lam)[::-1][:4], rtol=1e-9)


def test_eigsh_on_a_network_agrees_with_our_lanczos_and_the_dense_hessian():
    """On a small classifier (float64): SciPy's ARPACK on the LinearOperator, our Lanczos and
    the eigenvalues of the dense Hessian agree, at both ends of the spectrum."""
    from scipy.sparse.linalg import eigsh

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    x, y = torch.randn(50, 6, dtype=torch.float64), torch.randint(0, 3, (50,))
    obj = ClassifierObjective(net, x, y)
    op = HessianOperator(obj)
    lin = op.as_linear_operator()
    assert lin.shape == (op.dim, op.dim) and lin.dtype == np.float64
    dense = np.linalg.eigvalsh(dense_hessian(obj).numpy())
    for which, ours_which, truth in (("LA", "largest", dense[::-1][:3]), ("SA", "smallest", dense[:3])):
        theirs = np.sort(eigsh(lin, k=3, which=which, tol=1e-12)[0])
        ours = np.sort(top_eigenpairs(op, k=3, which=ours_which, tol=1e-10, max_steps=op.dim).values)
        np.testing.assert_allclose(theirs, np.sort(truth), rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-9)
