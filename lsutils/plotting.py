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

__all__ = ["PALETTE", "use_style", "pinn_fields", "loss_curves", "error_vs_beta", "learning_curves",
           "dataset_examples", "spectral_density", "top_eigenvalues", "curvature_vs_beta",
           "landscape_contour", "landscape_surface", "landscape_curves"]

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


def learning_curves(histories: Mapping[str, Sequence[Mapping[str, Sequence[float]]]], *,
                    title: str = "") -> Figure:
    """Training loss and test accuracy per epoch, one colour per model, mean over seeds
    with a band of one standard deviation (the band vanishes for a single seed)."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    for i, (name, runs) in enumerate(histories.items()):
        colour = PALETTE[i % len(PALETTE)]
        for ax, key, scale in ((ax_loss, "train_loss", 1.0), (ax_acc, "test_acc", 100.0)):
            vals = scale * np.array([h[key] for h in runs], dtype=float)
            epochs = np.arange(1, vals.shape[1] + 1)
            mean, std = vals.mean(0), vals.std(0)
            ax.plot(epochs, mean, color=colour, label=f"{name} ({len(runs)} seeds)")
            ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
    ax_loss.set(yscale="log", xlabel="epoch", ylabel="training loss (cross-entropy, augmented)",
                title="Training loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy")
    ax_acc.legend()
    if title:
        fig.suptitle(title)
    return fig


def dataset_examples(x, y, *, per_class: int = 1, title: str = "") -> Figure:
    """A few inputs per class: signals as curves (1-D) or images (2-D, de-normalised per image)."""
    x, y = _np(x), _np(y)
    classes = sorted(set(y.tolist()))
    fig, axes = plt.subplots(per_class, len(classes), figsize=(1.6 * len(classes), 1.5 * per_class),
                             squeeze=False, constrained_layout=True)
    for j, c in enumerate(classes):
        for i, idx in enumerate(np.flatnonzero(y == c)[:per_class]):
            ax = axes[i, j]
            if x.ndim == 3:
                ax.plot(x[idx, 0], color=PALETTE[0], lw=1.2)
            else:
                img = np.transpose(x[idx], (1, 2, 0))
                ax.imshow((img - img.min()) / (np.ptp(img) + 1e-12))
            ax.set(xticks=[], yticks=[])
            ax.grid(False)
            if i == 0:
                ax.set_title(f"class {c}", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def spectral_density(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
                     title: str = "Hessian eigenvalue density (SLQ)", ax=None) -> Figure:
    """Eigenvalue densities ``{label: (grid, density)}`` on a log density axis."""
    fig = ax.figure if ax is not None else plt.figure()
    ax = ax if ax is not None else fig.add_subplot()
    for i, (label, (grid, dens)) in enumerate(curves.items()):
        ax.semilogy(grid, np.maximum(np.asarray(dens), 1e-12), color=PALETTE[i % len(PALETTE)],
                    label=label, lw=1.2)
    lows = [np.max(d) for _, d in curves.values()]
    ax.set_ylim(1e-6 * max(lows), 2 * max(lows))
    ax.set(xlabel="eigenvalue", ylabel="density (log scale)", title=title)
    ax.legend()
    return fig


def top_eigenvalues(spectra: Mapping[str, Sequence[float]], *, num_classes: int | None = None,
                    title: str = "Top Hessian eigenvalues") -> Figure:
    """Descending top eigenvalues per model on a log scale, the class count ``C`` marked
    (Fort & Ganguli 2019: about C outliers stand above the bulk)."""
    fig, ax = plt.subplots()
    for i, (label, vals) in enumerate(spectra.items()):
        v = np.sort(np.asarray(vals, dtype=float))[::-1]
        ax.semilogy(np.arange(1, len(v) + 1), np.where(v > 0, v, np.nan), "o-", ms=3, lw=1,
                    color=PALETTE[i % len(PALETTE)], label=label)
    if num_classes:
        ax.axvline(num_classes + 0.5, color="k", ls=":", lw=1)
        ax.text(num_classes + 0.6, ax.get_ylim()[1], f" C = {num_classes}", va="top", fontsize=8)
    ax.set(xlabel="rank $i$", ylabel="eigenvalue $\\lambda_i$ (log scale)", title=title)
    ax.legend()
    return fig


def curvature_vs_beta(betas: Sequence[float], top: Sequence[Sequence[float]],
                      trace: Sequence[Sequence[float]], *, title: str = "") -> Figure:
    """Top eigenvalue and trace of the PINN Hessian against beta (one dot per seed)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    for ax, vals, name in ((axes[0], top, "top eigenvalue $\\lambda_1$"), (axes[1], trace, "trace")):
        for b, v in zip(betas, vals):
            ax.scatter([b] * len(v), v, color=PALETTE[0], s=22)
        ax.plot(betas, [np.mean(v) for v in vals], color=PALETTE[0], lw=1)
        ax.set(yscale="log", xlabel="convection coefficient $\\beta$", ylabel=f"{name} (log scale)",
               title=name.capitalize())
    if title:
        fig.suptitle(title)
    return fig


def _log_levels(z: np.ndarray, n: int) -> np.ndarray:
    finite = z[np.isfinite(z)]
    lo, hi = max(finite.min(), 1e-12), finite.max()
    if hi <= lo * 1.0001:
        return np.linspace(finite.min(), finite.max() + 1e-12, n)
    return np.geomspace(lo, hi, n)


def landscape_contour(land, *, key: str = "loss", filled: bool = False, levels: int = 25,
                      trajectory: np.ndarray | None = None, title: str = "",
                      xlabel: str = "$a_1$", ylabel: str = "$a_2$", ax=None) -> Figure:
    """A 2-D landscape as contour lines (or filled contours) with log-spaced levels,
    the centre marked, and optionally a trajectory ``[T, 2]`` drawn on it."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(5.2, 4.4))
    ax = ax if ax is not None else fig.add_subplot()
    x, y = land.axes[0], land.axes[1]
    z = land.values[key]
    lv = _log_levels(z, levels)
    norm = matplotlib.colors.LogNorm(vmin=lv[0], vmax=lv[-1]) if lv[0] > 0 else None
    draw = ax.contourf if filled else ax.contour
    cs = draw(x, y, z.T, levels=lv, norm=norm, cmap="viridis")
    fig.colorbar(cs, ax=ax, label=f"{key} (log-spaced levels)")
    ax.plot([0], [0], marker="*", color="red", ms=10, ls="none", label="trained weights")
    if trajectory is not None:
        ax.plot(trajectory[:, 0], trajectory[:, 1], "o-", color="white" if filled else "k", ms=2.5, lw=1,
                label="trajectory")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, aspect="auto")
    ax.grid(False)
    ax.legend(loc="upper right", fontsize=7)
    return fig


def landscape_surface(land, *, key: str = "loss", log: bool = True, title: str = "",
                      xlabel: str = "$a_1$", ylabel: str = "$a_2$") -> Figure:
    """A 2-D landscape as a 3-D surface (``log10`` of the values when ``log``)."""
    fig = plt.figure(figsize=(6, 4.6))
    ax = fig.add_subplot(projection="3d")
    X, Y = np.meshgrid(land.axes[0], land.axes[1], indexing="ij")
    z = land.values[key]
    Z = np.log10(np.maximum(z, 1e-12)) if log else z
    ax.plot_surface(X, Y, Z, cmap="viridis", linewidth=0, antialiased=True, rstride=1, cstride=1)
    ax.set(xlabel=xlabel, ylabel=ylabel, zlabel=f"log10 {key}" if log else key, title=title)
    return fig


def landscape_curves(curves: Mapping[str, object], *, key: str = "loss", log: bool = True,
                     title: str = "", xlabel: str = "$\\alpha$", ax=None) -> Figure:
    """1-D landscapes ``{label: Landscape}`` against their coordinate."""
    fig = ax.figure if ax is not None else plt.figure()
    ax = ax if ax is not None else fig.add_subplot()
    for i, (label, land) in enumerate(curves.items()):
        ax.plot(land.axes[0], land.values[key], color=PALETTE[i % len(PALETTE)], label=label)
    if log:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=key + (" (log scale)" if log else ""), title=title)
    ax.legend()
    return fig
