r"""Merge trees, 0-dimensional persistence and landscape profiles of gridded landscapes.

The sublevel sets :math:`\{a : f(a) \le t\}` of a landscape change their connected
components only at critical points: a component is born at a local minimum and dies
when it merges into an older one at a saddle (the *elder rule*). The merge tree records
these events; its (minimum, saddle) pairs are the 0-dimensional persistence pairs, with
persistence :math:`f(\text{saddle}) - f(\text{minimum})`. Xie et al. 2024 summarize a
landscape by the number of minima and saddles and the average persistence; Geniesse et
al. 2024 draw the tree as a 1-D *landscape profile*; Landscaper's SMAD is the mean
:math:`|f(\text{saddle}) - f(\text{minimum})|` over the pairs.

**Connectivity.** Grid points are vertices and neighbours differ by one step along one
axis (4 neighbours in 2-D, 6 in 3-D, 8 in 4-D): the 1-skeleton of gudhi's
``CubicalComplex(vertices=...)``, so the pairs equal gudhi's dimension-0 pairs.

**Ties.** Equal values are ordered by their flat (C-order) grid index, lower index
first (simulation of simplicity). A plateau therefore holds one minimum, at its first
point in C order; pairs of zero persistence (a minimum and saddle of equal value) are
kept in the tree but left out of summaries, as gudhi leaves them out of its diagram.

**Algorithm.** Every point is linked to its lowest lower neighbour and the links are
followed by pointer jumping (vectorized), which labels each point with the minimum of
its descending basin. At any level t a point below t is joined to its basin's minimum
through points below t, so the sublevel components are unions of basins, and
Kruskal's algorithm on the basin adjacency graph (an edge's level is the higher of its
two ends) gives the merge events exactly. Only the basin graph is visited in Python.

Example:
    >>> import numpy as np
    >>> f = np.array([[0.0, 2.0, 1.0],
    ...               [3.0, 3.0, 3.0],
    ...               [0.5, 2.5, 0.2]])   # four minima, three saddles
    >>> s = summarize(merge_tree(f))
    >>> s.n_minima, s.n_saddles
    (4, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MergeTree", "TopologySummary", "merge_tree", "summarize", "landscape_profile", "diagrams_equal"]


@dataclass
class MergeTree:
    """The merge tree of a grid's sublevel sets.

    Attributes:
        values: the grid (any shape, 1-D to 4-D).
        rank: each point's position in the total order (value, then flat index), flat.
        labels: flat index of the minimum of each point's descending basin, flat.
        pairs: ``[k, 3]`` flat indices ``(minimum, saddle, elder minimum)`` per merge,
            in merge order; the minimum dies at the saddle, into the elder's component.
        global_min: flat index of the global minimum (the essential class).
        root: flat index of the global maximum, where the tree ends.
    """

    values: np.ndarray
    rank: np.ndarray  # flat
    labels: np.ndarray  # flat
    pairs: np.ndarray
    global_min: int
    root: int

    @property
    def flat(self) -> np.ndarray:
        return self.values.reshape(-1)

    @property
    def persistence(self) -> np.ndarray:
        """``f(saddle) - f(minimum)`` of every pair, in merge order."""
        return self.flat[self.pairs[:, 1]] - self.flat[self.pairs[:, 0]]

    @property
    def minima(self) -> np.ndarray:
        """Flat indices of the minima with non-zero persistence (and the global one)."""
        keep = self.pairs[self.persistence > 0, 0]
        return np.concatenate([[self.global_min], keep]).astype(np.int64)

    @property
    def saddles(self) -> np.ndarray:
        """Distinct saddle points of the pairs with non-zero persistence."""
        return np.unique(self.pairs[self.persistence > 0, 1])

    def diagram(self, essential: bool = True) -> np.ndarray:
        """Persistence pairs ``[(birth, death)]`` with non-zero persistence, the essential
        pair ``(global min, inf)`` first when ``essential`` (gudhi's convention)."""
        keep = self.persistence > 0
        pts = np.stack([self.flat[self.pairs[keep, 0]], self.flat[self.pairs[keep, 1]]], 1)
        if essential:
            pts = np.concatenate([[[self.flat[self.global_min], np.inf]], pts])
        return pts.reshape(-1, 2)

    def coords(self, index: int) -> tuple[int, ...]:
        """Grid coordinates of a flat index."""
        return tuple(int(i) for i in np.unravel_index(index, self.values.shape))

    def simplify(self, threshold: float) -> "MergeTree":
        """The tree without the pairs of persistence below ``threshold`` (their basins
        are absorbed by the elder branches); ``threshold=0`` drops zero-length pairs."""
        if threshold < 0:
            raise ValueError(f"threshold = {threshold}; allowed: >= 0")
        keep = self.persistence > threshold if threshold == 0 else self.persistence >= threshold
        pairs = self.pairs[keep].copy()
        # elders that were pruned hand their role to the branch that absorbed them
        absorbed = {int(m): int(e) for m, _, e in self.pairs[~keep]}
        for row in pairs:
            e = int(row[2])
            while e in absorbed:
                e = absorbed[e]
            row[2] = e
        return MergeTree(self.values, self.rank, self.labels, pairs, self.global_min, self.root)

    def branches(self) -> dict[int, list[int]]:
        """Each minimum's branch: the minimum, then the saddles where it absorbed another
        component (by level), then the saddle where it dies (the root for the global min).
        Pairs of zero persistence (ties) are left out, as in the summaries."""
        if (self.persistence <= 0).any():
            return self.simplify(0).branches()
        chains: dict[int, list[int]] = {int(m): [int(m)] for m in self.pairs[:, 0]}
        chains[self.global_min] = [self.global_min]
        for _, s, e in self.pairs[np.argsort(self.rank[self.pairs[:, 1]], kind="stable")]:
            if chains[int(e)][-1] != s:
                chains[int(e)].append(int(s))
        for m, s, _ in self.pairs:
            if chains[int(m)][-1] != s:
                chains[int(m)].append(int(s))
        if chains[self.global_min][-1] != self.root:
            chains[self.global_min].append(self.root)
        return chains

    def nodes_and_edges(self) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
        """Tree nodes ``{index, coords, value, kind}`` (kind: minimum, saddle or root)
        and edges ``(child, parent)`` as positions in the node list."""
        chains = self.branches()
        kinds: dict[int, str] = {}
        for m, chain in chains.items():
            kinds[m] = "minimum"
            for s in chain[1:]:
                kinds.setdefault(s, "saddle")
        kinds[self.root] = "root" if self.root != self.global_min else "minimum"
        order = sorted(kinds, key=lambda v: self.rank[v])
        pos = {v: i for i, v in enumerate(order)}
        nodes = [{"index": v, "coords": self.coords(v), "value": float(self.flat[v]), "kind": kinds[v]}
                 for v in order]
        edges = sorted({(pos[a], pos[b]) for chain in chains.values() for a, b in zip(chain[:-1], chain[1:])})
        return nodes, edges


def _find(parent: dict[int, int], x: int) -> int:
    """Union-find root of ``x`` (absent keys are their own roots), compressing the path."""
    root = x
    while parent.get(root, root) != root:
        root = parent[root]
    while parent.get(x, x) != root:
        parent[x], x = root, parent[x]
    return root


def diagrams_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two persistence diagrams ``[(birth, death)]`` are the same multiset."""
    a, b = np.asarray(a, float).reshape(-1, 2), np.asarray(b, float).reshape(-1, 2)
    return a.shape == b.shape and np.array_equal(a[np.lexsort((a[:, 1], a[:, 0]))],
                                                 b[np.lexsort((b[:, 1], b[:, 0]))])


def _lowest_neighbour(rank: np.ndarray) -> np.ndarray:
    """Flat index of each point's lowest axis neighbour below it (itself if none)."""
    shape, n = rank.shape, rank.size
    index = np.arange(n).reshape(shape)
    best_rank, best = rank.copy(), index.copy()
    for axis in range(rank.ndim):
        for step in (1, -1):
            src = [slice(None)] * rank.ndim
            dst = [slice(None)] * rank.ndim
            src[axis] = slice(step, None) if step == 1 else slice(None, -1)
            dst[axis] = slice(None, -1) if step == 1 else slice(1, None)
            nb_rank, nb = rank[tuple(src)], index[tuple(src)]
            view_rank, view = best_rank[tuple(dst)], best[tuple(dst)]
            lower = nb_rank < view_rank
            view_rank[lower], view[lower] = nb_rank[lower], nb[lower]
    return best.reshape(-1)


def merge_tree(values: np.ndarray, nonfinite: str = "raise") -> MergeTree:
    """The sublevel-set merge tree of a 1-D to 4-D grid of values.

    Args:
        values: values on a regular grid (a landscape's loss).
        nonfinite: what to do with NaN or infinite values: ``"raise"`` (the default), or
            ``"max"``: treat them as the largest finite value (a diverged region then
            reads as a plateau at the top of the landscape).

    Returns:
        The :class:`MergeTree`, with ties broken by flat index (see the module notes).

    Raises:
        ValueError: for an empty grid, more than 4 dimensions, non-finite values with
            ``nonfinite="raise"``, or an unknown ``nonfinite``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or not 1 <= values.ndim <= 4:
        raise ValueError(f"values has shape {values.shape}; allowed: a non-empty 1-D to 4-D grid")
    if nonfinite not in ("raise", "max"):
        raise ValueError(f"nonfinite = {nonfinite!r}; allowed: 'raise', 'max'")
    finite = np.isfinite(values)
    if not finite.all():
        if nonfinite == "raise" or not finite.any():
            raise ValueError(f"values has {int((~finite).sum())} non-finite points; allowed: finite values "
                             "only (or nonfinite='max' to treat them as the largest finite value)")
        values = np.where(finite, values, values[finite].max())
    flat = values.reshape(-1)
    order = np.argsort(flat, kind="stable")  # ties: lower flat index first
    rank = np.empty_like(order)
    rank[order] = np.arange(flat.size)
    rank = rank.reshape(values.shape)

    ptr = _lowest_neighbour(rank)
    while True:  # pointer jumping to the basin's minimum
        nxt = ptr[ptr]
        if np.array_equal(nxt, ptr):
            break
        ptr = nxt
    labels = ptr
    flat_rank = rank.reshape(-1)

    # basin adjacency: the lowest crossing level between every two adjacent basins
    idx = np.arange(flat.size).reshape(values.shape)
    a_all, b_all = [], []
    for axis in range(values.ndim):
        lo = [slice(None)] * values.ndim
        hi = [slice(None)] * values.ndim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        a, b = idx[tuple(lo)].reshape(-1), idx[tuple(hi)].reshape(-1)
        cross = labels[a] != labels[b]
        a_all.append(a[cross])
        b_all.append(b[cross])
    a, b = np.concatenate(a_all), np.concatenate(b_all)
    saddle = np.where(flat_rank[a] > flat_rank[b], a, b)
    la, lb = np.minimum(labels[a], labels[b]), np.maximum(labels[a], labels[b])
    key = la * flat.size + lb
    sort = np.lexsort((flat_rank[saddle], key))
    first = np.ones(len(sort), bool)
    first[1:] = key[sort][1:] != key[sort][:-1]
    sel = sort[first]
    sel = sel[np.argsort(flat_rank[saddle[sel]], kind="stable")]

    parent: dict[int, int] = {}
    pairs: list[tuple[int, int, int]] = []
    for s, u, v in zip(saddle[sel].tolist(), la[sel].tolist(), lb[sel].tolist()):
        ru, rv = _find(parent, u), _find(parent, v)
        if ru == rv:
            continue
        elder, young = (ru, rv) if flat_rank[ru] < flat_rank[rv] else (rv, ru)
        parent[young] = elder  # union-find roots are the components' minima
        pairs.append((young, s, elder))
    return MergeTree(values=values, rank=flat_rank, labels=labels,
                     pairs=np.asarray(pairs, dtype=np.int64).reshape(-1, 3),
                     global_min=int(order[0]), root=int(order[-1]))


@dataclass(frozen=True)
class TopologySummary:
    """Xie et al.'s and Landscaper's numbers for one landscape (pairs of zero persistence
    and, when ``threshold > 0``, pairs below it are left out).

    Attributes:
        n_minima: minima (the global one included).
        n_saddles: distinct saddles where components merge.
        average_persistence: mean persistence of the finite pairs (0 if none).
        average_persistence_essential: the same with the essential pair, whose
            persistence is ``max - min`` (the global minimum dies at the root).
        max_persistence: the largest finite persistence (0 if none).
        smad: mean ``|f(saddle) - f(minimum)|`` over the finite pairs (Landscaper).
        smad_normalized: ``smad / (max - min)`` of the grid.
        value_range: ``max - min`` of the grid.
        threshold: the simplification threshold used.
    """

    n_minima: int
    n_saddles: int
    average_persistence: float
    average_persistence_essential: float
    max_persistence: float
    smad: float
    smad_normalized: float
    value_range: float
    threshold: float = 0.0


def summarize(tree: MergeTree, threshold: float = 0.0) -> TopologySummary:
    """Counts, average persistence and SMAD of a tree simplified at ``threshold``."""
    t = tree.simplify(threshold)
    pers = t.persistence
    pers = pers[pers > 0]
    vrange = float(tree.flat[tree.root] - tree.flat[tree.global_min])
    mean = float(pers.mean()) if len(pers) else 0.0
    return TopologySummary(
        n_minima=len(pers) + 1, n_saddles=len(np.unique(t.pairs[t.persistence > 0, 1])),
        average_persistence=mean,
        average_persistence_essential=float((pers.sum() + vrange) / (len(pers) + 1)),
        max_persistence=float(pers.max()) if len(pers) else 0.0,
        smad=mean, smad_normalized=mean / vrange if vrange > 0 else 0.0,
        value_range=vrange, threshold=float(threshold))


def _component_sizes(tree: MergeTree, queries: list[tuple[int, int]]) -> list[int]:
    """Points in the sublevel component of minimum ``m`` strictly below rank ``r``, for
    each query ``(m, r)``, by replaying the merges (of the full tree) up to ``r``."""
    flat_rank, labels = tree.rank, tree.labels
    n = flat_rank.size
    basins, basin_of = np.unique(labels, return_inverse=True)
    key = np.sort(basin_of.astype(np.int64) * n + flat_rank)
    bid = {int(b): i for i, b in enumerate(basins)}
    merges = tree.pairs[np.argsort(flat_rank[tree.pairs[:, 1]], kind="stable")]
    members: dict[int, list[int]] = {int(b): [int(b)] for b in basins}
    parent: dict[int, int] = {}
    out = [0] * len(queries)
    j = 0
    for qi in sorted(range(len(queries)), key=lambda i: queries[i][1]):
        m, r = queries[qi]
        while j < len(merges) and flat_rank[merges[j, 1]] < r:
            young, _, elder = (int(v) for v in merges[j])
            ry, re = _find(parent, young), _find(parent, elder)
            if ry != re:
                if len(members[ry]) > len(members[re]):
                    ry, re = re, ry
                parent[ry] = re
                members[re] += members.pop(ry)
            j += 1
        ids = np.array([bid[b] for b in members[_find(parent, m)]], dtype=np.int64)
        out[qi] = int((np.searchsorted(key, ids * n + r) - np.searchsorted(key, ids * n)).sum())
    return out


def landscape_profile(tree: MergeTree, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The 1-D landscape profile of Geniesse et al. 2024 from the (simplified) tree.

    Each minimum becomes a basin whose depth is its persistence and whose width is the
    number of grid points in its component when it merges (or, for the global
    minimum, the whole grid at the maximum): children sit side by side inside their
    parent's basin, walls rise from the saddle level to the parent's level.

    Returns:
        ``(x, y)``: the profile's polyline, ``x`` in grid points (0 to the grid size),
        ``y`` in loss units.
    """
    t = tree.simplify(threshold)
    flat, rank = t.flat, t.rank
    chains = t.branches()
    # children of every node: the branches ending there and the elder's previous node
    children: dict[int, list[tuple[int, int]]] = {}
    for m, chain in chains.items():
        for below, node in zip(chain[:-1], chain[1:]):
            children.setdefault(node, []).append((below, m))
    # width of each node's component just below the level above it: (node, top rank) -> points
    stack, keys, queries = [(t.root, t.global_min, int(rank[t.root]) + 1)], [], []
    while stack:
        node, m, top = stack.pop()
        keys.append((node, top))
        queries.append((m, top))
        for child, cm in children.get(node, []):
            stack.append((child, cm, int(rank[node])))
    sizes = dict(zip(keys, _component_sizes(tree, queries)))

    def shape(node: int, top: int, level: float) -> tuple[list[float], list[float]]:
        width = sizes[(node, top)]
        kids = children.get(node, [])
        if not kids:
            return [0.0, width / 2, width], [level, float(flat[node]), level]
        kids = sorted(kids, key=lambda c: -sizes[(c[0], int(rank[node]))])  # widest first
        xs, ys, x0 = [], [], 0.0
        for child, _ in kids:
            cx, cy = shape(child, int(rank[node]), float(flat[node]))
            xs += [x0 + v for v in (cx if not xs else cx[1:])]
            ys += cy if len(ys) == 0 else cy[1:]
            x0 += sizes[(child, int(rank[node]))]
        pad = (width - x0) / 2
        return [0.0] + [pad + v for v in xs] + [width], [level] + ys + [level]

    top_level = float(flat[t.root])
    if t.root == t.global_min:  # a constant grid
        return np.array([0.0, flat.size]), np.array([top_level, top_level])
    x, y = shape(t.root, int(rank[t.root]) + 1, top_level)
    return np.asarray(x), np.asarray(y)
