"""Linear CKA against its defining properties and a hand-computed value; mixup; distances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsutils.similarity import (l2_distance, linear_cka, mixup_inputs, mixup_plan, representations, seed_cka,
                                seed_distance)


def _reps(n: int = 50, p: int = 6, q: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, p, generator=g, dtype=torch.float64)
    y = x[:, :q] @ torch.randn(q, q, generator=g, dtype=torch.float64) + 0.5 * torch.randn(n, q, generator=g,
                                                                                            dtype=torch.float64)
    return x, y


def _reference_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA written from its kernel form, HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), H the centring matrix."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, ell = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float(np.sum(k * ell) / np.sqrt(np.sum(k * k) * np.sum(ell * ell)))


def test_cka_of_a_representation_with_itself_is_one():
    x, _ = _reps()
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("side", ["x", "y"])
def test_cka_is_invariant_to_orthogonal_maps_and_isotropic_scaling(side):
    x, y = _reps()
    base = linear_cka(x, y)
    g = torch.Generator().manual_seed(1)
    dim = x.shape[1] if side == "x" else y.shape[1]
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    for t in (lambda a: a @ q, lambda a: 7.5 * a, lambda a: -0.01 * (a @ q)):
        got = linear_cka(t(x), y) if side == "x" else linear_cka(x, t(y))
        assert got == pytest.approx(base, abs=1e-12)


def test_cka_changes_under_a_general_invertible_map():
    x, y = _reps()
    a = torch.diag(torch.tensor([1.0, 10.0, 0.1, 3.0, 1.0, 0.5], dtype=torch.float64))
    a[0, 1] = 2.0
    assert torch.linalg.matrix_rank(a) == 6
    assert abs(linear_cka(x @ a, y) - linear_cka(x, y)) > 0.02


def test_cka_by_hand_and_against_the_kernel_form():
    x = torch.tensor([[1.0], [2.0], [3.0]])
    y = torch.tensor([[1.0], [0.0], [2.0]])
    assert linear_cka(x, y) == pytest.approx(0.25, abs=1e-12)  # (x.y)^2 / (|x|^2 |y|^2) = 1 / 4 after centring
    x, y = _reps(n=20, p=60, q=3)  # features outnumber samples: the Gram form
    assert linear_cka(x, y) == pytest.approx(_reference_cka(x.numpy(), y.numpy()), abs=1e-12)
    x, y = _reps(n=40, p=5, q=3)
    assert linear_cka(x, y) == pytest.approx(_reference_cka(x.numpy(), y.numpy()), abs=1e-12)
    with pytest.raises(ValueError, match="constant"):
        linear_cka(torch.ones(5, 2), y[:5])
    with pytest.raises(ValueError, match="the same inputs"):
        linear_cka(x[:4], y[:5])


def test_mixup_uses_one_beta16_lambda_per_batch():
    from scipy import stats

    n, bs = 64 * 300, 64
    partner, lam = mixup_plan(n, batch_size=bs, seed=3)
    for b in range(0, n, bs):
        assert sorted(partner[b:b + bs].tolist()) == list(range(b, b + bs))  # a permutation within the batch
        assert bool((lam[b:b + bs] == lam[b]).all())  # one lambda per batch
    draws = lam[::bs].numpy()
    assert stats.kstest(draws, stats.beta(16, 16).cdf).pvalue > 0.01
    assert abs(draws.mean() - 0.5) < 0.02 and abs(draws.std() - (1 / (4 * 33)) ** 0.5) < 0.015
    x = torch.randn(200, 1, 40)
    p, w = mixup_plan(200, seed=0)
    mixed = mixup_inputs(x, seed=0)
    assert torch.allclose(mixed, w.float().view(-1, 1, 1) * x + (1 - w.float().view(-1, 1, 1)) * x[p], atol=1e-6)
    assert mixed.shape == x.shape and not torch.equal(mixed, mixup_inputs(x, seed=1))


def test_seed_cka_and_distances_on_small_networks():
    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)) for _ in range(3)]
    x = torch.randn(200, 5)
    same = seed_cka([nets[0], nets[0]], x)
    assert same == pytest.approx(1.0, abs=1e-9)
    pairs = seed_cka(nets, x, mixup=False)
    by_hand = np.mean([linear_cka(representations(a, x), representations(b, x))
                       for i, a in enumerate(nets) for j, b in enumerate(nets) if i != j])
    assert pairs == pytest.approx(by_hand, abs=1e-12) and 0 < pairs < 1
    hidden = representations(nets[0], x, layer="1")
    assert hidden.shape == (200, 16) and bool((hidden >= 0).all())
    with pytest.raises(ValueError, match="layer = 'nope'"):
        representations(nets[0], x, layer="nope")
    pa = {k: v.detach() for k, v in nets[0].named_parameters()}
    pb = {k: v.detach() for k, v in nets[1].named_parameters()}
    flat = torch.cat([(pa[k].double() - pb[k].double()).flatten() for k in pa])
    assert l2_distance(pa, pb) == pytest.approx(float(flat.norm()), rel=1e-12)
    assert seed_distance([pa, pb]) == pytest.approx(l2_distance(pa, pb))
