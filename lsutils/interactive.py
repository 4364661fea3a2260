"""Interactive figures of landscapes (plotly): surfaces with their critical points, 3-D blocks.

The static figures of :mod:`lsutils.plotting` stay for print; these are for turning a
landscape around. Shown with :func:`lsutils.display.show_interactive`, they render offline in
the book (the site serves one local plotly.js) and through plotly's renderer elsewhere.

The loss is drawn on a log scale (:math:`\\log_{10}` of the loss), as the contour plots are:
a landscape's values span decades, and a linear surface is a flat plain with one spike.

Example:
    >>> import numpy as np
    >>> from lsutils.landscape import Landscape
    >>> from lsutils.topology import merge_tree
    >>> a = np.linspace(-1, 1, 9)
    >>> loss = 1 + (a[:, None] ** 2 - 0.25) ** 2 + a[None, :] ** 2
    >>> land = Landscape(axes=[a, a], values={"loss": loss}, directions=["x", "y"])
    >>> fig = surface(land, tree=merge_tree(loss))
    >>> [t.name for t in fig.data]
    ['loss', 'minimum (2)', 'saddle (1)']
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["surface", "block", "triangle"]

_MARKERS = {"minimum": ("#1f77b4", "circle"), "saddle": ("#d62728", "diamond")}


def _log10(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=float)
    floor = np.nanmin(z[z > 0]) if np.any(z > 0) else 1.0
    return np.log10(np.clip(np.where(np.isfinite(z), z, np.nan), floor, None))


def surface(land: Any, *, key: str = "loss", tree: Any = None, title: str = "", xlabel: str = "a1",
            ylabel: str = "a2", height: int = 480) -> Any:
    """A 2-D landscape as a surface of log10(loss), with the merge tree's minima and saddles marked.

    Args:
        land: a 2-D :class:`lsutils.landscape.Landscape`.
        tree: its merge tree (:func:`lsutils.topology.merge_tree`), or None for the surface only.
    """
    import plotly.graph_objects as go

    if len(land.axes) != 2:
        raise ValueError(f"landscape of {len(land.axes)} dimensions; allowed: 2 (use block() for 3)")
    x, y = np.asarray(land.axes[0], float), np.asarray(land.axes[1], float)
    z = _log10(land.values[key])
    fig = go.Figure(go.Surface(x=x, y=y, z=z.T, colorscale="Viridis", name=key, showscale=True,
                               colorbar={"title": {"text": f"log10 {key}"}, "len": 0.7},
                               hovertemplate=f"{xlabel} %{{x:.2f}}<br>{ylabel} %{{y:.2f}}<br>"
                                             f"log10 {key} %{{z:.3f}}<extra></extra>"))
    if tree is not None:
        nodes, _ = tree.nodes_and_edges()
        for kind, (colour, symbol) in _MARKERS.items():
            pts = [n for n in nodes if n["kind"] == kind]
            if not pts:
                continue
            i, j = (np.array([n["coords"][d] for n in pts]) for d in (0, 1))
            fig.add_trace(go.Scatter3d(
                x=x[i], y=y[j], z=z[i, j] + 0.01 * (np.nanmax(z) - np.nanmin(z)), mode="markers",
                name=f"{kind} ({len(pts)})", marker={"size": 5, "color": colour, "symbol": symbol},
                customdata=[n["value"] for n in pts],
                hovertemplate=f"{kind}<br>{key} %{{customdata:.4g}}<extra></extra>"))
    fig.update_layout(title={"text": title}, height=height, margin={"l": 0, "r": 0, "t": 40, "b": 0},
                      scene={"xaxis_title": xlabel, "yaxis_title": ylabel, "zaxis_title": f"log10 {key}"},
                      legend={"x": 0, "y": 1})
    return fig


def block(land: Any, *, key: str = "loss", surfaces: int = 4, title: str = "", height: int = 480) -> Any:
    """A 3-D landscape block as nested isosurfaces of log10(loss) (the low-loss basin innermost).

    Example:
        >>> import numpy as np
        >>> from lsutils.landscape import Landscape
        >>> a = np.linspace(-1, 1, 5)
        >>> loss = 1 + a[:, None, None] ** 2 + a[None, :, None] ** 2 + a[None, None, :] ** 2
        >>> block(Landscape(axes=[a, a, a], values={"loss": loss}, directions=["x", "y", "z"])).data[0].type
        'isosurface'
    """
    import plotly.graph_objects as go

    if len(land.axes) != 3:
        raise ValueError(f"landscape of {len(land.axes)} dimensions; allowed: 3")
    grids = np.meshgrid(*[np.asarray(a, float) for a in land.axes], indexing="ij")
    v = _log10(land.values[key])
    lo, hi = np.nanmin(v), np.nanmax(v)
    fig = go.Figure(go.Isosurface(
        x=grids[0].ravel(), y=grids[1].ravel(), z=grids[2].ravel(), value=v.ravel(),
        isomin=lo + 0.1 * (hi - lo), isomax=lo + 0.7 * (hi - lo), surface_count=surfaces,
        opacity=0.35, colorscale="Viridis", caps={"x_show": False, "y_show": False, "z_show": False},
        colorbar={"title": {"text": f"log10 {key}"}, "len": 0.7},
        hovertemplate=f"log10 {key} %{{value:.3f}}<extra></extra>"))
    fig.update_layout(title={"text": title}, height=height, margin={"l": 0, "r": 0, "t": 40, "b": 0},
                      scene={"xaxis_title": "v1", "yaxis_title": "v2", "zaxis_title": "v3"})
    return fig


def triangle(xy: np.ndarray, surfaces: dict[str, np.ndarray], *, corners: list[str] | None = None, title: str = "",
             height: int = 480) -> Any:
    """Surfaces of log10(loss) over scattered points of the plane (e.g. the cut through three
    solutions of :meth:`lsutils.simplex.StarComplex.cut`), one trace per entry of ``surfaces``
    (the first shown, the others a legend click away), on a Delaunay triangulation of ``xy``;
    ``corners`` names the points at the cut's corners (0, 0), (1, 0) and (1/2, sqrt(3)/2).

    Example:
        >>> xy = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 0.87], [0.5, 0.3]])
        >>> fig = triangle(xy, {"before": np.array([1.0, 1.0, 1.0, 9.0]), "after": np.ones(4)})
        >>> [(t.type, t.name, t.visible) for t in fig.data]
        [('mesh3d', 'before', True), ('mesh3d', 'after', 'legendonly')]
    """
    import plotly.graph_objects as go
    from matplotlib.tri import Triangulation

    xy = np.asarray(xy, dtype=float)
    faces = Triangulation(xy[:, 0], xy[:, 1]).triangles
    fig = go.Figure()
    for n, (name, values) in enumerate(surfaces.items()):
        z = _log10(values)
        fig.add_trace(go.Mesh3d(x=xy[:, 0], y=xy[:, 1], z=z, i=faces[:, 0], j=faces[:, 1], k=faces[:, 2],
                                intensity=z, colorscale="Viridis", name=name, showlegend=True,
                                visible=True if n == 0 else "legendonly", showscale=n == 0,
                                colorbar={"title": {"text": "log10 loss"}, "len": 0.7},
                                hovertemplate=f"{name}<br>log10 loss %{{z:.3f}}<extra></extra>"))
    if corners:
        top = max(float(np.nanmax(_log10(v))) for v in surfaces.values())
        at = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])[:len(corners)]  # the cut's corners
        ends = xy[[int(np.argmin(((xy - c) ** 2).sum(1))) for c in at]]
        fig.add_trace(go.Scatter3d(x=ends[:, 0], y=ends[:, 1], z=[top] * len(ends), mode="text", text=corners,
                                   name="solutions", showlegend=False, hoverinfo="skip"))
    fig.update_layout(title={"text": title}, height=height, margin={"l": 0, "r": 0, "t": 40, "b": 0},
                      scene={"xaxis": {"visible": False}, "yaxis": {"visible": False}, "zaxis_title": "log10 loss",
                             "aspectmode": "manual", "aspectratio": {"x": 1.0, "y": 0.87, "z": 0.6},
                             "camera": {"eye": {"x": 0.9, "y": -1.5, "z": 0.9}}},
                      legend={"x": 0, "y": 1})
    return fig

