"""Merge trees and persistence against gudhi and hand-made landscapes."""

from __future__ import annotations

import gudhi
import numpy as np
import pytest

from lsutils.topology import diagrams_equal, landscape_profile, merge_tree, summarize


def gudhi_pairs(values: np.ndarray) -> np.ndarray:
    pts = [p for d, p in gudhi.CubicalComplex(vertices=values).persistence() if d == 0]
    return np.array(pts, dtype=float).reshape(-1, 2)


def wells(centres, shape=(61, 61), width=0.4, depths=None) -> np.ndarray:
    axes = np.meshgrid(*[np.linspace(-3, 3, n) for n in shape], indexing="ij")
    depths = depths or [1.0] * len(centres)
    return -sum(d * np.exp(-sum((a - c) ** 2 for a, c in zip(axes, cen)) / width)
                for d, cen in zip(depths, centres))


@pytest.mark.parametrize("shape", [(40,), (9, 11), (60, 57), (8, 9, 10), (4, 5, 6, 7)])
def test_pairs_equal_gudhi_on_random_fields(shape):
    values = np.random.default_rng(sum(shape)).random(shape)
    ours = merge_tree(values).diagram()
    theirs = gudhi_pairs(values)
    assert len(ours) > 1 and diagrams_equal(ours, theirs)


def test_pairs_equal_gudhi_with_ties_and_plateaus():
    values = np.random.default_rng(1).integers(0, 4, (25, 23)).astype(float)  # many ties
    assert diagrams_equal(merge_tree(values).diagram(), gudhi_pairs(values))
    assert not diagrams_equal(merge_tree(values).diagram()[1:], gudhi_pairs(values))  # one pair short


def test_single_bowl():
    axes = np.meshgrid(np.linspace(-1, 1, 51), np.linspace(-1, 1, 41), indexing="ij")
    s = summarize(merge_tree(axes[0] ** 2 + 2 * axes[1] ** 2))
    assert (s.n_minima, s.n_saddles, s.smad, s.average_persistence) == (1, 0, 0.0, 0.0)
    assert s.average_persistence_essential == pytest.approx(3.0)  # max - min of the bowl


@pytest.mark.parametrize("centres,shape", [
    ([(-2, -2), (2, 2), (-2, 2), (0, 0), (2, -2)], (61, 61)),
    ([(-2, -2, -2), (2, 2, 2), (2, -2, 0)], (31, 31, 31)),
])
def test_separated_wells_give_k_minima_and_k_minus_1_saddles(centres, shape):
    values = wells(centres, shape)
    tree = merge_tree(values)
    s = summarize(tree)
    assert (s.n_minima, s.n_saddles) == (len(centres), len(centres) - 1)
    found = sorted(tree.coords(m) for m in tree.minima)
    axis = np.linspace(-3, 3, shape[0])
    expected = sorted(tuple(int(np.argmin(np.abs(axis - c))) for c in cen) for cen in centres)
    assert found == expected
    nodes, edges = tree.nodes_and_edges()
    kinds = [n["kind"] for n in nodes]
    assert kinds.count("minimum") == len(centres) and kinds.count("saddle") == len(centres) - 1
    assert kinds.count("root") == 1 and len(edges) == len(nodes) - 1  # a tree


def test_hand_computed_summary_1d():
    # minima at 0 (value 0) and 2 (value 1); they merge at index 1 (value 2); max 3
    s = summarize(merge_tree(np.array([0.0, 2.0, 1.0, 3.0])))
    assert (s.n_minima, s.n_saddles) == (2, 1)
    assert s.average_persistence == pytest.approx(1.0) and s.smad == pytest.approx(1.0)
    assert s.average_persistence_essential == pytest.approx((1.0 + 3.0) / 2)
    assert s.smad_normalized == pytest.approx(1 / 3) and s.value_range == pytest.approx(3.0)


def test_monotone_transform_keeps_the_tree():
    values = wells([(-2, -2), (2, 2), (-2, 2), (0, 0)], (41, 41)) + 0.01 * np.random.default_rng(0).random((41, 41))
    a, b = merge_tree(values), merge_tree(np.exp(3 * values) + values ** 3)
    np.testing.assert_array_equal(a.pairs, b.pairs)
    assert [(n["index"], n["kind"]) for n in a.nodes_and_edges()[0]] == \
           [(n["index"], n["kind"]) for n in b.nodes_and_edges()[0]]
    assert a.nodes_and_edges()[1] == b.nodes_and_edges()[1]


def test_plateaus_are_deterministic_and_documented():
    flat = merge_tree(np.full((5, 6), 2.0))
    assert flat.global_min == 0 and summarize(flat).n_minima == 1 and len(flat.diagram(False)) == 0
    # two plateaus at the same level, split by a ridge: one minimum each, at the plateau's
    # first point in C order; the later one dies on the ridge
    values = np.zeros((4, 7))
    values[:, 3] = 5.0
    tree = merge_tree(values)
    assert sorted(tree.coords(m) for m in tree.minima) == [(0, 0), (0, 4)]
    assert tree.coords(int(tree.pairs[0, 1]))[1] == 3 and summarize(tree).average_persistence == 5.0
    ties = merge_tree(np.round(wells([(-2, -2), (2, 2)], (41, 41)), 2))  # ties make zero-length pairs
    assert (ties.persistence == 0).any()
    kinds = [n["kind"] for n in ties.nodes_and_edges()[0]]
    assert kinds.count("minimum") == summarize(ties).n_minima and kinds.count("saddle") == summarize(ties).n_saddles
    again = merge_tree(values.copy())
    np.testing.assert_array_equal(tree.pairs, again.pairs)


def test_simplification_removes_shallow_basins():
    values = wells([(-2, -2), (2, 2), (-2, 2)], depths=[1.0, 0.8, 0.05])
    full, simple = summarize(merge_tree(values)), summarize(merge_tree(values), threshold=0.02 + 0.03)
    assert (full.n_minima, simple.n_minima, simple.n_saddles) == (3, 2, 1)
    with pytest.raises(ValueError, match="threshold"):
        merge_tree(values).simplify(-1)


def test_landscape_profile_has_a_basin_per_minimum():
    values = wells([(-2, -2), (2, 2), (-2, 2)], depths=[1.0, 0.8, 0.5])
    tree = merge_tree(values)
    x, y = landscape_profile(tree)
    assert x[0] == 0 and x[-1] == values.size and np.all(np.diff(x) >= 0)
    inner = (y[1:-1] < y[:-2]) & (y[1:-1] < y[2:])
    bottoms = np.sort(y[1:-1][inner])
    np.testing.assert_allclose(bottoms, np.sort(values.reshape(-1)[tree.minima]))
    assert y.min() == values.min() and y.max() == values.max()


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="non-finite"):
        merge_tree(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="nonfinite"):
        merge_tree(np.zeros(3), nonfinite="drop")
    capped = merge_tree(np.array([0.0, np.inf, 1.0, np.nan, 0.5]), nonfinite="max")
    np.testing.assert_array_equal(capped.values, [0.0, 1.0, 1.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="1-D to 4-D"):
        merge_tree(np.zeros((2,) * 5))
