"""How much do Hessian estimates move with the data subset in the loss? (Troubleshooting page.)

A small MLP is trained on MNIST-1D (a few seconds), then for each number of samples in the
loss, the top eigenvalue (Lanczos) and the trace (Hutchinson) are measured on several
disjoint-seeded random subsets of the training set. The spread over subsets is what a reader
sees when a chapter's ``n_samples`` is changed.

    python benchmarks/hessian_spread.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

from lsutils.data import mnist1d
from lsutils.hessian import HessianOperator, hutchinson_trace, top_eigenpairs
from lsutils.objectives import ClassifierObjective


def main(sizes=(250, 500, 1000, 2000, 4000), subsets: int = 5, probes: int = 30) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = mnist1d()
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(40, 100), torch.nn.ReLU(),
                              torch.nn.Linear(100, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = data.x_train, data.y_train
    for _ in range(1500):
        idx = torch.randint(0, len(x), (128,))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()
    print(f"MLP 40-100-100-10, {sum(p.numel() for p in net.parameters()):,} parameters, train accuracy "
          f"{(net(x).argmax(1) == y).float().mean():.3f}")
    print("| samples | lambda_1 mean | lambda_1 spread (std/mean) | trace mean | trace spread (std/mean) "
          "| s per subset |")
    print("|--:|--:|--:|--:|--:|--:|")
    for n in sizes:
        lam, tr, t0 = [], [], time.perf_counter()
        for s in range(subsets):
            idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(100 + s))[:n]
            op = HessianOperator(ClassifierObjective(net, x[idx], y[idx]))
            lam.append(top_eigenpairs(op, k=1, tol=1e-4).values[0])
            tr.append(hutchinson_trace(op, n_probes=probes, seed=s).mean)
        lam, tr = np.array(lam), np.array(tr)
        print(f"| {n} | {lam.mean():.3g} | {lam.std(ddof=1) / lam.mean():.1%} | {tr.mean():.4g} | "
              f"{tr.std(ddof=1) / tr.mean():.1%} | {(time.perf_counter() - t0) / subsets:.2f} |")


if __name__ == "__main__":
    main()
