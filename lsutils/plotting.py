"""One house style for every figure in the book.

Each function draws one kind of figure on a fresh (or given) figure and returns
it, with a title and labelled axes; the notebook adds the caption. Colours come
from one palette, fields use ``viridis`` and signed errors ``RdBu_r``.

Example:
    >>> import numpy as np
    >>> use_style()
    >>> fig = error_vs_beta([1.0, 30.0], [[0.01, 0.02], [0.9, 1.0]])
    >>> fig.axes[0].get_xlabel().startswith("convection coefficient")
    True
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = ["PALETTE", "WIDTH", "DPI", "use_style", "panels", "round_log_ticks",
           "pinn_fields", "loss_curves", "error_vs_beta", "learning_curves",
           "dataset_examples", "spectral_density", "top_eigenvalues", "curvature_vs_beta",
           "landscape_contour", "landscape_curves", "persistence_diagram",
           "merge_tree", "landscape_profiles", "scatter_groups"]

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]


# Sized for the book's text column: 6.2 in at 105 dpi is 651 px, within the 672 px a figure gets at a
# 1280 px window, so it is shown at its own size and a 10.5 pt tick label is 15.3 px tall,
# as large as the body's small print (14 px). Multi-panel figures use at most two columns.
WIDTH = 6.2
DPI = 105


def use_style() -> None:
    """Apply the house style (call once in each notebook's Setup)."""
    plt.rcParams.update({
        "figure.dpi": DPI, "savefig.dpi": DPI, "figure.figsize": (WIDTH, 4.0),
        "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
        "axes.spines.right": False, "axes.titlesize": 12, "axes.labelsize": 11,
        "xtick.labelsize": 10.5, "ytick.labelsize": 10.5, "font.size": 10, "figure.titlesize": 12,
        "legend.fontsize": 10, "legend.frameon": False, "image.cmap": "viridis",
        "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    })


def panels(n: int, *, cols: int = 2, height: float = 3.0, **kw) -> tuple[Figure, np.ndarray]:
    """A figure of ``n`` panels in rows of at most ``cols`` (two by default), the text column wide.

    Example:
        >>> fig, axs = panels(3)
        >>> axs.shape, bool(fig.get_size_inches()[0] == WIDTH)
        ((3,), True)
    """
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, height * rows), squeeze=False,
                             constrained_layout=True, **kw)
    for ax in axes.ravel()[n:]:
        ax.remove()
    return fig, axes.ravel()[:n]


def round_log_ticks(lo: float, hi: float, most: int = 5) -> np.ndarray:
    """A few round ticks for a log axis from ``lo`` to ``hi``: decades, else 1-2-5 steps,
    else four values rounded to two significant digits.

    Example:
        >>> round_log_ticks(1.4e3, 1.0e6).tolist()
        [10000.0, 100000.0, 1000000.0]
        >>> round_log_ticks(0.31, 0.9).tolist()
        [0.5, 0.7]
        >>> round_log_ticks(0.31, 0.34).tolist()
        [0.31, 0.32, 0.33, 0.34]
    """
    lo, hi = float(lo), float(hi)
    if not (0 < lo < hi):
        return np.array([lo])
    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    ticks = np.zeros(0)
    for mantissas in ((1.0,), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)):
        ticks = np.array([float(f"{m * 10.0 ** e:.3g}") for e in decades for m in mantissas
                          if lo * (1 - 1e-9) <= m * 10.0 ** e <= hi * (1 + 1e-9)])
        if len(ticks) >= 2:
            break
    if len(ticks) < 2:
        ticks = np.unique([float(f"{v:.2g}") for v in np.geomspace(lo, hi, 4)])
    return ticks[:: -(-len(ticks) // most)]


def _log_colorbar(fig: Figure, mappable, ax, label: str, lo: float, hi: float):
    cbar = fig.colorbar(mappable, ax=ax, label=label)
    ticks = round_log_ticks(lo, hi)
    cbar.set_ticks(ticks)
    decades = np.log10(ticks)
    if np.allclose(decades, np.round(decades)) and (ticks.max() >= 1e3 or ticks.min() <= 1e-2):
        cbar.set_ticklabels([f"$10^{{{int(round(e))}}}$" for e in decades])
    else:
        cbar.set_ticklabels([f"{t:g}" for t in ticks])
    cbar.ax.minorticks_off()
    return cbar


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def pinn_fields(rows: Sequence[tuple[str, object, object]], x, t) -> Figure:
    """Exact, predicted and error fields ``u(x, t)``, one row per case.

    Args:
        rows: ``(title, exact, pred)`` per row; fields are ``[nt, nx]``.
        x, t: the grid's coordinates, ``[nx]`` and ``[nt]``.
    """
    x, t = _np(x), _np(t)
    fig, axes = plt.subplots(len(rows), 3, figsize=(WIDTH, 2.3 * len(rows)), squeeze=False,
                             constrained_layout=True, sharey=True)
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
            ax.set(title=f"{title}\n{name}" if ax is row[0] else name, xlabel="$t$",
                   ylabel="$x$" if ax is row[0] else "")
            ax.grid(False)
            ax.locator_params(nbins=3)
            fig.colorbar(im, ax=ax, shrink=0.9, location="bottom", aspect=12)
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
        ax.text(steps[phases.index("lbfgs")], ax.get_ylim()[1], " L-BFGS", va="top", fontsize=9)
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
    fig, (ax_loss, ax_acc) = panels(2, height=3.4)
    for i, (name, runs) in enumerate(histories.items()):
        colour = PALETTE[i % len(PALETTE)]
        for ax, key, scale in ((ax_loss, "train_loss", 1.0), (ax_acc, "test_acc", 100.0)):
            vals = scale * np.array([h[key] for h in runs], dtype=float)
            epochs = np.arange(1, vals.shape[1] + 1)
            mean, std = vals.mean(0), vals.std(0)
            ax.plot(epochs, mean, color=colour, label=f"{name} ({len(runs)} seeds)")
            ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
    ax_loss.set(yscale="log", xlabel="epoch", ylabel="training loss (augmented)",
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
    cols = min(len(classes), 5)
    bands = -(-len(classes) // cols)  # classes wrap into bands of `cols`, `per_class` rows each
    fig, axes = plt.subplots(per_class * bands, cols, figsize=(WIDTH, 1.25 * per_class * bands),
                             squeeze=False, constrained_layout=True)
    for j, c in enumerate(classes):
        for i, idx in enumerate(np.flatnonzero(y == c)[:per_class]):
            ax = axes[(j // cols) * per_class + i, j % cols]
            if x.ndim == 3:
                ax.plot(x[idx, 0], color=PALETTE[0], lw=1.2)
            else:
                img = np.transpose(x[idx], (1, 2, 0))
                ax.imshow((img - img.min()) / (np.ptp(img) + 1e-12))
            ax.set(xticks=[], yticks=[])
            ax.grid(False)
            if i == 0:
                ax.set_title(f"class {c}", fontsize=10)
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
        ax.text(num_classes + 0.6, ax.get_ylim()[1], f" C = {num_classes}", va="top", fontsize=9)
    ax.set(xlabel="rank $i$", ylabel="eigenvalue $\\lambda_i$ (log scale)", title=title)
    ax.legend()
    return fig


def curvature_vs_beta(betas: Sequence[float], top: Sequence[Sequence[float]],
                      trace: Sequence[Sequence[float]], *, title: str = "") -> Figure:
    """Top eigenvalue and trace of the PINN Hessian against beta (one dot per seed)."""
    fig, axes = panels(2, height=3.2)
    for ax, vals, name in ((axes[0], top, "top eigenvalue $\\lambda_1$"), (axes[1], trace, "trace")):
        for b, v in zip(betas, vals):
            ax.scatter([b] * len(v), v, color=PALETTE[0], s=22)
        ax.plot(betas, [np.mean(v) for v in vals], color=PALETTE[0], lw=1)
        ax.set(yscale="log", xlabel="$\\beta$", ylabel=f"{name} (log scale)", title=name.capitalize())
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
    fig = ax.figure if ax is not None else plt.figure(figsize=(WIDTH * 0.8, 4.2))
    ax = ax if ax is not None else fig.add_subplot()
    x, y = land.axes[0], land.axes[1]
    z = land.values[key]
    lv = _log_levels(z, levels)
    norm = matplotlib.colors.LogNorm(vmin=lv[0], vmax=lv[-1]) if lv[0] > 0 else None
    draw = ax.contourf if filled else ax.contour
    cs = draw(x, y, z.T, levels=lv, norm=norm, cmap="viridis")
    if norm is not None:
        _log_colorbar(fig, cs, ax, f"{key} (log scale)", lv[0], lv[-1])
    else:
        fig.colorbar(cs, ax=ax, label=key)
    ax.plot([0], [0], marker="*", color="red", ms=10, ls="none", label="trained weights")
    if trajectory is not None:
        ax.plot(trajectory[:, 0], trajectory[:, 1], "o-", color="white" if filled else "k", ms=2.5, lw=1,
                label="trajectory")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, aspect="auto")
    ax.grid(False)
    ax.legend(loc="upper right", fontsize=9)
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


def persistence_diagram(diagrams: Mapping[str, np.ndarray], *, title: str = "", log: bool = False,
                        ax=None) -> Figure:
    """0-dim persistence diagrams ``{label: [(birth, death)]}`` on one axes; the
    essential pair (death ``inf``) is drawn on a dashed line above the others."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(WIDTH * 0.75, 4.4))
    ax = ax if ax is not None else fig.add_subplot()
    pts = [np.asarray(d, float).reshape(-1, 2) for d in diagrams.values()]
    finite = np.concatenate([p[np.isfinite(p)] for p in pts] + [np.zeros(0)])
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    log = log and finite.size > 0 and lo > 0  # an empty or non-positive diagram stays linear
    top = hi * 1.5 if log else hi + 0.1 * (hi - lo + 1e-12)
    for i, (label, p) in enumerate(zip(diagrams, pts)):
        death = np.where(np.isfinite(p[:, 1]), p[:, 1], top)
        ax.scatter(p[:, 0], death, s=18, color=PALETTE[i % len(PALETTE)], label=f"{label} ({len(p)} pairs)",
                   alpha=0.8)
    ax.plot([lo, top], [lo, top], color="0.5", lw=1)
    ax.axhline(top, color="0.5", ls="--", lw=1)
    ax.text(lo, top, " essential (dies at infinity)", va="bottom", fontsize=9, color="0.3")
    if not sum(len(p) for p in pts):
        ax.text(0.5, 0.5, "no bars", transform=ax.transAxes, ha="center", color="0.3")
    if log:
        ax.set(xscale="log", yscale="log")
    ax.set(xlabel="birth (loss at the minimum)", ylabel="death (loss at the saddle)", title=title)
    ax.legend(fontsize=9, loc="lower right")
    return fig


def merge_tree(tree, *, title: str = "", log: bool = True, ax=None) -> Figure:
    """A merge tree (:class:`lsutils.topology.MergeTree`) with nodes at their loss:
    minima (blue), saddles (red), the root (the grid's maximum, black)."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(WIDTH, 4))
    ax = ax if ax is not None else fig.add_subplot()
    nodes, edges = tree.nodes_and_edges()
    kids: dict[int, list[int]] = {}
    for c, p in edges:
        kids.setdefault(p, []).append(c)
    x: dict[int, float] = {}

    def place(n: int) -> float:  # leaves left to right in depth-first order
        if n not in kids:
            x[n] = float(len([v for v in x if v not in kids]))
        else:
            x[n] = float(np.mean([place(c) for c in sorted(kids[n], key=lambda c: nodes[c]["value"])]))
        return x[n]

    root = next(i for i, n in enumerate(nodes) if n["kind"] == "root") if len(nodes) > 1 else 0
    place(root)
    y = np.array([n["value"] for n in nodes])
    if log and y.min() <= 0:
        log = False
    for c, p in edges:
        ax.plot([x[c], x[c], x[p]], [y[c], y[p], y[p]], color="0.4", lw=1)
    colours = {"minimum": PALETTE[0], "saddle": PALETTE[1], "root": "k"}
    for kind, colour in colours.items():
        idx = [i for i, n in enumerate(nodes) if n["kind"] == kind]
        ax.scatter([x[i] for i in idx], y[idx], color=colour, s=22, zorder=3, label=f"{kind} ({len(idx)})")
    if log:
        ax.set_yscale("log")
    ax.set(xlabel="minima (in tree order)", ylabel="loss" + (" (log scale)" if log else ""), title=title)
    ax.set_xticks([])
    ax.legend(fontsize=9)
    return fig


def landscape_profiles(profiles: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str = "",
                       log: bool = True, ax=None) -> Figure:
    """Landscape profiles ``{label: (x, y)}`` (Geniesse et al. 2024), the width scaled to
    the fraction of the grid so grids of different sizes compare."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(6.4, 3.6))
    ax = ax if ax is not None else fig.add_subplot()
    for i, (label, (px, py)) in enumerate(profiles.items()):
        px = np.asarray(px, float) / max(float(np.max(px)), 1.0)
        ax.plot(px, py, color=PALETTE[i % len(PALETTE)], label=label, lw=1.2)
        ax.fill_between(px, py, np.max(py), color=PALETTE[i % len(PALETTE)], alpha=0.08)
    if log and all(np.min(p[1]) > 0 for p in profiles.values()):
        ax.set_yscale("log")
    ax.set(xlabel="fraction of the grid's points (basin width)", ylabel="loss (basin depth)", title=title)
    ax.legend(fontsize=9)
    return fig


def scatter_groups(groups: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, xlabel: str,
                   ylabel: str, title: str = "", logx: bool = False, logy: bool = False, ax=None) -> Figure:
    """One point per model, ``{group: (xs, ys)}``, coloured by group."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(WIDTH * 0.7, 3.6))
    ax = ax if ax is not None else fig.add_subplot()
    for i, (label, (xs, ys)) in enumerate(groups.items()):
        ax.scatter(xs, ys, color=PALETTE[i % len(PALETTE)], label=label, s=28)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xscale="log" if logx else "linear",
           yscale="log" if logy else "linear")
    ax.legend(fontsize=9)
    return fig
