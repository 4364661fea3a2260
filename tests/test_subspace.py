"""Random subspaces: exactly orthonormal, the same from blocks of any size, and training in one of
full dimension reaches what full training reaches."""

from __future__ import annotations

import pytest
import torch

from lsutils.subspace import RandomSubspace, train_in_subspace


@pytest.mark.parametrize("dim, rank, block", [(300, 7, 64), (50, 50, 7), (1, 1, 1)])
def test_columns_are_orthonormal_and_products_stream(dim, rank, block):
    s = RandomSubspace(dim, rank, seed=3, block_rows=block)
    p = s.dense()
    assert p.shape == (dim, rank)
    assert torch.allclose(p.T @ p, torch.eye(rank, dtype=torch.float64), atol=1e-10)
    z, g = torch.randn(rank, dtype=torch.float64), torch.randn(dim, dtype=torch.float64)
    assert torch.allclose(s.lift(z), p @ z, atol=1e-12) and torch.allclose(s.project(g), p.T @ g, atol=1e-12)
    assert torch.equal(RandomSubspace(dim, rank, seed=3, block_rows=block).dense(), p)  # seeded
    assert not torch.equal(RandomSubspace(dim, rank, seed=4, block_rows=block).dense(), p)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="allowed: 1 <= rank <= dim"):
        RandomSubspace(5, 6)
    with pytest.raises(ValueError, match="subspace.dim = 5"):
        train_in_subspace(lambda t: t.sum(), torch.zeros(4), RandomSubspace(5, 2), steps=1, lr=0.1)


def test_full_dimension_reaches_the_minimum_a_small_one_does_not():
    """A strictly convex quadratic in D = 40: training in a random subspace with d = D reaches its
    minimum (as full training does); with d = 5 the loss stays at the subspace's own minimum,
    predicted exactly by the projected problem."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(40, 40, generator=g, dtype=torch.float64)
    h = a @ a.T / 40 + torch.eye(40, dtype=torch.float64)
    star = torch.randn(40, generator=g, dtype=torch.float64)

    def loss(t: torch.Tensor) -> torch.Tensor:
        d = t - star
        return 0.5 * d @ h @ d

    lr = 1.0 / float(torch.linalg.eigvalsh(h)[-1])
    full, hist = train_in_subspace(loss, torch.zeros(40, dtype=torch.float64), RandomSubspace(40, 40, seed=1),
                                   steps=600, lr=lr)
    assert hist[-1] < 1e-10 and torch.allclose(full, star, atol=1e-5)
    s = RandomSubspace(40, 5, seed=1, block_rows=16)
    part, hist = train_in_subspace(loss, torch.zeros(40, dtype=torch.float64), s, steps=600, lr=lr)
    p = s.dense()
    z = torch.linalg.solve(p.T @ h @ p, p.T @ h @ star)  # the subspace's exact minimizer
    assert float(loss(part)) == pytest.approx(float(loss(p @ z)), rel=1e-6) and float(loss(part)) > 1.0
