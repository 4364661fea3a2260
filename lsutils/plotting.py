"""One house style for every figure in the book.

Each function draws one kind of figure on a fresh (or given) figure and returns
it, with a title and labelled axes; the notebook adds the caption. Colours come
from one palette, fields use ``viridis`` and signed errors ``RdBu_r``.

Example:
    >>> from lsutils import plotting
    >>> plotting.use_style()
    >>> fig = plotting.pinn_fields(exact, pred, x, t, title="beta = 1")
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = ["PALETTE", "use_style", "pinn_fields", "loss_curves", "error_vs_beta"]

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]


def use_style() -> None:
    """Apply the house style (call once in each notebook's Setup)."""
    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 150, "figure.figsize": (6.4, 4.0),
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
        "axes.spines.right": False, "axes.titlesize": 11, "axes.labelsize": 10,
        "legend.fontsize": 9, "legend.frameon": False, "image.cmap": "viridis",
        "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    })


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def pinn_fields(rows: Sequence[tuple[str, object, object]], x, t) -> Figure:
    """Exact, predicted and error fields ``u(x, t)``, one row per case.

    Args:
        rows: ``(title, exact, pred)`` per row; fields are ``[nt, nx]``.
        x, t: the grid's coordinates, ``[nx]`` and ``[nt]``.
    """
    x, t = _np(x), _np(t)
    fig, axes = plt.subplots(len(rows), 3, figsize=(12, 3.2 * len(rows)), squeeze=False,
                             constrained_layout=True)
    extent = (t[0], t[-1], x[0], x[-1])
    for row, (title, exact, pred) in zip(axes, rows):
        exact, pred = _np(exact), _np(pred)
        err = pred - exact
        lim, elim = max(np.abs(exact).max(), np.abs(pred).max()), np.abs(err).max()
        panels = ((exact, "exact $u(x,t)$", "viridis", lim), (pred, "PINN prediction", "viridis", lim),
                  (err, "error (prediction - exact)", "RdBu_r", elim))
        for ax, (field, name, cmap, m) in zip(row, panels):
            im = ax.imshow(field.T, origin="lower", aspect="auto", extent=extent, cmap=cmap,
                           vmin=-m, vmax=m, interpolation="nearest")
            ax.set(title=f"{title}: {name}" if ax is row[0] else name, xlabel="$t$", ylabel="$x$")
            ax.grid(False)
            fig.colorbar(im, ax=ax, shrink=0.9)
    return fig


def loss_curves(history: Mapping[str, Sequence], *, title: str = "",
                terms: Sequence[str] = ("loss", "residual", "initial", "boundary"),
                ax=None) -> Figure:
    """Loss terms against the optimisation step on a log scale, with the switch
    from Adam to L-BFGS marked."""
    fig = ax.figure if ax is not None else plt.figure()
    ax = ax if ax is not None else fig.add_subplot()
    steps = np.asarray(history["step"])
    for term in terms:
        ax.semilogy(steps, np.asarray(history[term], dtype=float), label=term,
                    lw=1.8 if term == "loss" else 1.0)
    phases = list(history.get("phase", []))
    if "lbfgs" in phases:
        ax.axvline(steps[phases.index("lbfgs")], color="k", ls=":", lw=1)
        ax.text(steps[phases.index("lbfgs")], ax.get_ylim()[1], " L-BFGS", va="top", fontsize=8)
    ax.set(xlabel="step (Adam steps, then L-BFGS iterations)", ylabel="loss (mean squared)",
           title=title)
    ax.legend()
    return fig


def error_vs_beta(betas: Sequence[float], errors: Sequence[Sequence[float]], *,
                  title: str = "Relative $L_2$ error against $\\beta$") -> Figure:
    """Relative L2 error of each seed against beta (log scale), with the paper's
    thresholds: about 1e-2 for success and 1 for the trivial (failed) solution."""
    fig, ax = plt.subplots()
    for i, (beta, errs) in enumerate(zip(betas, errors)):
        ax.scatter([beta] * len(errs), errs, color=PALETTE[0], s=25,
                   label="one seed" if i == 0 else None)
    ax.plot(betas, [np.mean(e) for e in errors], color=PALETTE[0], lw=1)
    ax.axhline(1e-2, color=PALETTE[2], ls="--", lw=1, label="published at $\\beta=1$ (~1e-2)")
    ax.axhline(1.0, color=PALETTE[1], ls="--", lw=1, label="trivial solution $u=0$ (error 1)")
    ax.set_yscale("log")
    ax.set(xlabel="convection coefficient $\\beta$", ylabel="relative $L_2$ error", title=title)
    ax.legend()
    return fig
