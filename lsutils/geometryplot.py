"""Figures of the training-geometry chapter (Fort & Ganguli 2019): spectra with the class count
marked, the class structure of the top eigenvectors, gradient confinement, curvature along
training against the stability threshold, the Goldilocks sweep and the random model.

Example:
    >>> rows = [{"epoch": e, "lr": 0.1, "eigenvalues": [3.0 - e, 1.0], "trace": 10.0, "trace_stderr": 1.0,
    ...          "weight_norm": 40.0 - e, "logit_scale": 1.0 + e} for e in (0, 1, 2)]
    >>> fig = curvature_along_training({"net": rows}, momentum=0.9)
    >>> fig.axes[0].get_yscale()
    'log'
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .plotting import PALETTE, panels

__all__ = ["spectra", "class_structure", "confinement", "curvature_along_training", "goldilocks", "logit_scan",
           "pinn_terms"]

STYLES = {("hessian", "eval"): ("-", "o", "H, eval mode"), ("hessian", "train"): ("-", "s", "H, train mode"),
          ("gauss_newton", "eval"): (":", "x", "G, eval mode"), ("gauss_newton", "train"): (":", "+", "G, train mode")}


def _mark_c(ax: Any, c: int) -> None:
    ax.axvline(c + 0.5, color="k", ls=":", lw=1)
    ax.text(c + 0.7, 0.97, f"C = {c}", transform=ax.get_xaxis_transform(), va="top", fontsize=9)


def spectra(spec: Mapping[tuple[str, str, str], Mapping[str, Any]], num_classes: int) -> Figure:
    """One panel per model: the top eigenvalues of H and G in both BatchNorm modes (log scale)."""
    labels = list(dict.fromkeys(k[0] for k in spec))
    fig, axs = panels(len(labels), height=3.4)
    for ax, label in zip(axs, labels):
        for (op, mode), (ls, marker, name) in STYLES.items():
            if (label, op, mode) not in spec:
                continue
            v = np.asarray(spec[(label, op, mode)]["eigenvalues"], dtype=float)
            ax.semilogy(np.arange(1, len(v) + 1), np.where(v > 0, v, np.nan), ls=ls, marker=marker, ms=3, lw=1,
                        color=PALETTE[0 if mode == "eval" else 1], label=name)
        _mark_c(ax, num_classes)
        ax.set(title=label, xlabel="rank $i$", ylabel="eigenvalue $\\lambda_i$")
    axs[0].legend(fontsize=8)
    return fig


def class_structure(cosines: Sequence[Sequence[float]], num_classes: int, *, title: str) -> Figure:
    """``|cos|`` between each top eigenvector (rows) and each class's mean gradient (columns)."""
    c = np.asarray(cosines, dtype=float)
    fig, ax = panels(1, height=3.6)
    ax = ax[0]
    im = ax.imshow(c, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.axhline(num_classes - 0.5, color="w", ls="--", lw=1)
    ax.set(xlabel="class $c$ (its mean gradient $\\bar g_c$)", ylabel="eigenvector rank $i$", title=title,
           xticks=range(c.shape[1]), yticks=range(0, c.shape[0], 5))
    fig.colorbar(im, ax=ax, label="$|\\cos(v_i, \\bar g_c)|$")
    return fig


def confinement(epochs: Mapping[str, Sequence[Mapping[str, Any]]], num_classes: int) -> Figure:
    """Per model: the fraction of the gradient in the top-k eigenspace against k, at the first,
    middle and last measured epochs (full batch solid, minibatches dashed), with k / D."""
    fig, axs = panels(len(epochs), height=3.4)
    for ax, (label, rows) in zip(axs, epochs.items()):
        picks = [rows[0], rows[len(rows) // 2], rows[-1]] if len(rows) > 2 else list(rows)
        for i, row in enumerate(picks):
            k = np.arange(1, len(row["full_fractions"]) + 1)
            ax.plot(k, row["full_fractions"], "-o", ms=3, color=PALETTE[i], label=f"epoch {row['epoch']}, full batch")
            if row.get("minibatch_fractions"):
                ax.plot(k, row["minibatch_fractions"], "--", color=PALETTE[i], label=f"epoch {row['epoch']}, minibatch")
            ax.plot(k, k / row["num_params"], color="0.5", lw=1, label="random subspace k / D" if i == 0 else None)
        _mark_c(ax, num_classes)
        ax.set(title=label, xlabel="top-k eigenspace of H (train mode)", ylabel="fraction of $\\|g\\|^2$",
               ylim=(0, 1.02))
    axs[0].legend(fontsize=7)
    return fig


def curvature_along_training(epochs: Mapping[str, Sequence[Mapping[str, Any]]], *, momentum: float) -> Figure:
    """Top eigenvalue (with the stability thresholds 2/lr and 2(1 + momentum)/lr), trace, weight
    norm and logit scale at every measured epoch, one colour per model."""
    fig, axs = panels(4, height=2.8)
    for i, (label, rows) in enumerate(epochs.items()):
        e = np.array([r["epoch"] for r in rows])
        col = PALETTE[i]
        axs[0].semilogy(e, [r["eigenvalues"][0] for r in rows], "-o", ms=3, color=col, label=label)
        tr, se = np.array([r["trace"] for r in rows]), np.array([r["trace_stderr"] for r in rows])
        axs[1].errorbar(e, tr, yerr=se, fmt="-o", ms=3, color=col, capsize=2)
        axs[2].plot(e, [r["weight_norm"] for r in rows], "-o", ms=3, color=col)
        axs[3].plot(e, [r["logit_scale"] for r in rows], "-o", ms=3, color=col)
    rows = next(iter(epochs.values()))
    e, lr = np.array([r["epoch"] for r in rows]), np.array([r["lr"] for r in rows])
    axs[0].semilogy(e, 2 / lr, "k--", lw=1, label="2 / lr")
    axs[0].semilogy(e, 2 * (1 + momentum) / lr, "k:", lw=1, label=f"2(1+{momentum:g}) / lr")
    axs[0].legend(fontsize=7)
    axs[0].set(title="top eigenvalue", xlabel="epoch", ylabel="$\\lambda_1$")
    axs[1].set(title="trace (± s.e.)", xlabel="epoch", ylabel="tr H")
    axs[2].set(title="weight norm", xlabel="epoch", ylabel="$\\|\\theta\\|$")
    axs[3].set(title="logit scale", xlabel="epoch", ylabel="RMS centred logit")
    return fig


def goldilocks(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Top: test accuracy against the subspace dimension, one line per radius (the full space as a
    dotted level), per network. Bottom: the excess curvature of the projected Hessian against r."""
    nets = [s for s in (True, False) if any(r["skip"] == s for r in rows)]
    fig, axs = panels(2 * len(nets), height=3.0)
    for j, skip in enumerate(nets):
        mine = [r for r in rows if r["skip"] == skip]
        radii = sorted({r["radius"] for r in mine})
        dims = sorted({r["dim"] for r in mine if r["dim"]})
        name = "skip" if skip else "no skip"
        ax, bx = axs[j], axs[len(nets) + j]
        for i, rad in enumerate(radii):
            sub = sorted((r for r in mine if r["radius"] == rad and r["dim"]), key=lambda r: r["dim"])
            ax.semilogx([r["dim"] for r in sub], [r["test_acc"] for r in sub], "-o", ms=3, color=PALETTE[i],
                        label=f"r = {rad:g}")
            full = [r["test_acc"] for r in mine if r["radius"] == rad and not r["dim"]]
            if full:
                ax.axhline(full[0], color=PALETTE[i], ls=":", lw=1)
        for i, d in enumerate(dims):
            sub = sorted((r for r in mine if r["dim"] == d), key=lambda r: r["radius"])
            bx.semilogx([r["radius"] for r in sub], [r["kappa"] for r in sub], "-o", ms=3, color=PALETTE[i],
                        label=f"d = {d}")
        bx.axhline(0, color="k", lw=0.8)
        ax.set(title=f"ResNet ({name}): training in $\\theta_0 + Pz$", xlabel="subspace dimension d",
               ylabel="test accuracy (%)")
        bx.set(title=f"({name}) excess curvature at $\\theta_0$", xlabel="initialization radius r",
               ylabel="tr $H_P$ / $\\|H_P\\|_F$")
    axs[0].legend(fontsize=8)
    axs[len(nets)].legend(fontsize=8)
    return fig


def logit_scan(scan: Sequence[tuple[float, Mapping[str, Any]]], num_classes: int) -> Figure:
    """The random model: its spectrum at each logit scale (left) and the outlier count with the
    gradient's fraction in the top-C eigenspace against the logit scale (right)."""
    fig, (ax, bx) = panels(2, height=3.4)
    for i, (beta, out) in enumerate(scan):
        v = np.asarray(out["eigenvalues"], dtype=float)
        ax.semilogy(np.arange(1, len(v) + 1), np.where(v > 0, v, np.nan), "-o", ms=2.5, lw=1,
                    color=PALETTE[i % len(PALETTE)], label=f"$\\beta$ = {beta:g}")
    _mark_c(ax, num_classes)
    ax.set(title="random model: spectrum of H = G", xlabel="rank $i$", ylabel="eigenvalue")
    ax.legend(fontsize=8)
    betas = [b for b, _ in scan]
    bx.plot(betas, [o["outliers"] for _, o in scan], "-o", ms=3, color=PALETTE[0], label="outliers (largest gap)")
    bx.axhline(num_classes, color="k", ls=":", lw=1)
    bx.set(title="outliers and confinement", xlabel="logit scale $\\beta$", ylabel="outlier count")
    cx = bx.twinx()
    cx.plot(betas, [o["fractions"][num_classes - 1] for _, o in scan], "--s", ms=3, color=PALETTE[1],
            label="gradient in top C")
    cx.set(ylabel="fraction of $\\|g\\|^2$ in top C", ylim=(0, 1.05))
    bx.legend(loc="lower left", fontsize=8)
    cx.legend(loc="lower right", fontsize=8)
    return fig


def pinn_terms(results: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Per PINN: the cumulative fraction of each loss term's gradient in the top-k Hessian
    eigenspace, against k."""
    fig, axs = panels(len(results), height=3.2)
    for ax, (label, out) in zip(axs, results.items()):
        for i, (term, frac) in enumerate(out["fractions"].items()):
            ax.plot(np.arange(1, len(frac) + 1), frac, "-o", ms=3, color=PALETTE[i], label=term)
        ax.set(title=f"{label}: {out['outliers']} outlier(s)", xlabel="top-k eigenspace of H",
               ylabel="fraction of $\\|g\\|^2$", ylim=(0, 1.02))
    axs[0].legend(fontsize=8)
    return fig
