"""The G-term and projected Hessians against dense matrices built independently."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, jacrev

from lsutils.gauss_newton import GaussNewtonOperator, projected
from lsutils.hessian import HessianOperator, dense_hessian
from lsutils.objectives import ClassifierObjective, QuadraticObjective


def _small_classifier(seed: int = 0) -> ClassifierObjective:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 4)).double()
    x, y = torch.randn(30, 5, dtype=torch.float64), torch.randint(0, 4, (30,))
    return ClassifierObjective(net, x, y, batch_size=8)  # several data batches


def _dense_g(obj: ClassifierObjective) -> torch.Tensor:
    """sum_i J_i^T (diag p_i - p_i p_i^T) J_i / N from the full Jacobian of the logits."""
    names = list(obj.params)
    shapes = [obj.params[k].shape for k in names]
    sizes = [obj.params[k].numel() for k in names]

    def logits(flat: torch.Tensor) -> torch.Tensor:
        p = {k: t.view(s) for k, t, s in zip(names, flat.split(sizes), shapes)}
        return functional_call(obj.model, p, (obj.x,))

    flat = torch.cat([obj.params[k].detach().reshape(-1) for k in names])
    jac = jacrev(logits)(flat)  # [N, C, D]
    prob = torch.softmax(logits(flat), -1)
    h_out = torch.diag_embed(prob) - prob[:, :, None] * prob[:, None, :]
    return torch.einsum("ncd,nce,nef->df", jac, h_out, jac) / len(obj.x)


def test_gauss_newton_products_equal_the_dense_g_term():
    obj = _small_classifier()
    op = GaussNewtonOperator(obj)
    dense = _dense_g(obj)
    basis = torch.eye(op.dim, dtype=torch.float64)
    built = torch.stack([op.matvec(e) for e in basis], 1)
    assert torch.allclose(built, dense, atol=1e-8, rtol=0)
    assert torch.linalg.eigvalsh(dense).min() > -1e-10  # positive semi-definite
    assert not torch.allclose(dense, dense_hessian(obj).double(), atol=1e-4)  # a hidden layer: G != H


def test_linear_softmax_model_has_g_equal_to_h():
    torch.manual_seed(1)
    obj = ClassifierObjective(torch.nn.Linear(6, 3).double(), torch.randn(40, 6, dtype=torch.float64),
                              torch.randint(0, 3, (40,)), batch_size=16)
    op, h = GaussNewtonOperator(obj), dense_hessian(obj).double()
    built = torch.stack([op.matvec(e) for e in torch.eye(op.dim, dtype=torch.float64)], 1)
    assert torch.allclose(built, h, atol=1e-10)


@pytest.mark.parametrize("which", ["hessian", "gauss_newton", "quadratic"])
def test_projected_equals_p_transpose_a_p(which):
    if which == "quadratic":
        a = torch.randn(9, 9, dtype=torch.float64)
        a = a + a.T
        op, dense = HessianOperator(QuadraticObjective(a)), a
    else:
        obj = _small_classifier(2)
        op = GaussNewtonOperator(obj) if which == "gauss_newton" else HessianOperator(obj)
        dense = _dense_g(obj) if which == "gauss_newton" else dense_hessian(obj).double()
    p, _ = torch.linalg.qr(torch.randn(op.dim, 4, dtype=torch.float64))
    assert torch.allclose(projected(op, p), p.T @ dense @ p, atol=1e-8)
    assert op.num_products == 4
    with pytest.raises(ValueError, match=r"basis has shape \(3, 4\)"):
        projected(op, torch.zeros(3, 4))


def test_a_pinn_objective_is_refused():
    with pytest.raises(TypeError, match="allowed: a ClassifierObjective"):
        GaussNewtonOperator(QuadraticObjective(torch.eye(2)))
