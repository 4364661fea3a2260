"""Figures of a phase diagram (Yang et al. 2021, their Figure 2): heat maps of each metric over
two log-spaced axes, the map of phases, and the trends beside the paper's published values.

The grid's values are powers of two (widths, batch sizes), so evenly spaced cells are a log
axis; each cell is annotated with its value. Colours are ``viridis`` on a log scale for
positive, wide-ranging metrics (eigenvalue, trace, loss) and linear otherwise.

Example:
    >>> rows = [{"width": w, "batch_size": b, "test_acc": 50.0 + w + b / 100} for w in (2, 4) for b in (32, 128)]
    >>> fig = phase_panels(rows, "width", "batch_size", [("test_acc", "test accuracy (%)", False)])
    >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
    ['2', '4']
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.colors as mcolors
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .plotting import PALETTE, panels

__all__ = ["phase_panels", "phase_map", "trends_vs_paper", "AXIS_LABELS"]

AXIS_LABELS = {"width": "width k (base channels)", "batch_size": "batch size (small: hot)",
               "noise": "label noise (fraction)"}

PHASE_COLOURS = {"I": "#d62728", "II": "#ff7f0e", "III": "#9467bd", "IV-A": "#17becf", "IV-B": "#2ca02c"}


def _grid(rows: Sequence[Mapping[str, Any]], x: str, y: str, key: str) -> tuple[list, list, np.ndarray]:
    xs = sorted({r[x] for r in rows})
    ys = sorted({r[y] for r in rows})
    z = np.full((len(ys), len(xs)), np.nan)
    for r in rows:
        value = r.get(key)
        z[ys.index(r[y]), xs.index(r[x])] = np.nan if value is None else float(value)
    return xs, ys, z


def _short(v: float) -> str:
    """A cell's value in at most four characters or so: 596, 48, 2.4, 0.09, 0.005."""
    return f"{v:.0f}" if abs(v) >= 10 else f"{v:.2g}" if abs(v) >= 0.001 else f"{v:.0e}"


def _axes(ax, xs: list, ys: list, x: str, y: str) -> None:
    ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
    ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
    ax.set_xlabel(AXIS_LABELS.get(x, x))
    ax.set_ylabel(AXIS_LABELS.get(y, y))
    ax.grid(False)


def phase_panels(rows: Sequence[Mapping[str, Any]], x: str, y: str, keys: Sequence[tuple[str, str, bool]], *,
                 title: str = "") -> Figure:
    """One heat map per ``(key, label, log colour scale)`` over the grid ``x`` by ``y``, values written in."""
    fig, axs = panels(len(keys), height=2.9)
    for ax, (key, label, log) in zip(axs, keys):
        xs, ys, z = _grid(rows, x, y, key)
        finite = z[np.isfinite(z)]
        norm = None
        if log and finite.size and finite.min() > 0:
            norm = mcolors.LogNorm(vmin=finite.min(), vmax=max(finite.max(), finite.min() * 1.01))
        im = ax.imshow(z, origin="lower", aspect="auto", cmap="viridis", norm=norm)
        fig.colorbar(im, ax=ax, label=label)
        for (i, j), v in np.ndenumerate(z):
            if np.isfinite(v):
                ax.text(j, i, _short(v), ha="center", va="center", fontsize=8,
                        color="white" if im.norm(v) < 0.5 else "black")
        _axes(ax, xs, ys, x, y)
        ax.set_title(label)
    if title:
        fig.suptitle(title)
    return fig


def phase_map(rows: Sequence[Mapping[str, Any]], x: str, y: str, *, title: str = "", ax=None) -> Figure:
    """The phase of every grid point (``row["phase"]``) as coloured, labelled cells."""
    if ax is None:
        fig, axs = panels(1, height=3.2)
        ax = axs[0]
    fig = ax.figure
    xs = sorted({r[x] for r in rows})
    ys = sorted({r[y] for r in rows})
    for r in rows:
        i, j = ys.index(r[y]), xs.index(r[x])
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, color=PHASE_COLOURS.get(r["phase"], "#cccccc"), alpha=0.75))
        ax.text(j, i, r["phase"], ha="center", va="center", fontsize=11, fontweight="bold")
    ax.set_xlim(-0.5, len(xs) - 0.5)
    ax.set_ylim(-0.5, len(ys) - 0.5)
    _axes(ax, xs, ys, x, y)
    ax.set_title(title or "phases")
    return fig


def trends_vs_paper(widths: Sequence[float], ours: Mapping[str, Sequence[float]], published: Mapping[str, Any], *,
                    batch_size: int) -> Figure:
    """Top eigenvalue, CKA and mc against width: this book's values at ``batch_size`` beside Yang et
    al.'s ResNet18 / CIFAR-10 values at batch size 128 (log width axis)."""
    fig, axs = panels(3, cols=3, height=2.8)
    specs = [("top_eigenvalue", "top Hessian eigenvalue", True), ("cka", "CKA between seeds", False),
             ("mc", "mc (training-error points)", False)]
    for ax, (key, label, log) in zip(axs, specs):
        ax.plot(widths, ours[key], "o-", color=PALETTE[0], label=f"this book (batch {batch_size})")
        if key in published:
            ax.plot(published["width"], published[key], "s--", color=PALETTE[1], label="Yang et al. (batch 128)")
        elif key == "mc":
            ax.plot([published["width"][0], published["width"][-1]], [published["mc_first"], published["mc_last"]],
                    "s--", color=PALETTE[1], label="Yang et al. (batch 128)")
        ax.set_xscale("log", base=2)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("width")
        ax.set_title(label, fontsize=10.5)
    axs[0].legend(fontsize=8.5, loc="lower left")
    return fig
