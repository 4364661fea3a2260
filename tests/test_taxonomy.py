"""The phase-diagram cells measure what they claim: the top eigenvalue and trace against the dense
Hessian of the same network, the pair metrics against direct computations; phases by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsutils.data import load_dataset
from lsutils.hessian import dense_hessian
from lsutils.objectives import ClassifierObjective
from lsutils.similarity import seed_cka, seed_distance
from lsutils.taxonomy import (PHASES, ModelTask, PairTask, PhaseDiagrams, PhaseRecipe, classify, geometric_middle,
                              model_cells, pair_cells, phase_table)

RECIPE = PhaseRecipe(epochs=2, hessian_samples=120, lanczos_steps=60, lanczos_tol=1e-4, trace_probes=400,
                     curve_steps=20, curve_points=5, path_samples=120, cka_samples=120)


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist1d", num_samples=400).subset(240, 100)


def test_cells_measure_against_the_dense_hessian_and_direct_computations(data, data_root):
    torch.manual_seed(0)
    points = [(2, 32, 0.0), (2, 32, 0.3)]
    models = ModelTask(data, RECIPE, "tx")
    cells = model_cells(points, [0, 1], RECIPE, data)
    assert [c.name for c in cells] == ["k2_b32_noise0_seed0", "k2_b32_noise0_seed1", "k2_b32_noise0.3_seed0",
                                       "k2_b32_noise0.3_seed1"]
    cell = cells[2]
    got = models(cell, torch.device("cpu"))
    run, noisy = models.run(cell.params, torch.device("cpu"))
    assert got["num_params"] == 604 and noisy.name.endswith("noise0.3s0")
    assert (noisy.y_train != data.y_train).float().mean().item() == pytest.approx(0.3, abs=0.01)
    obj = ClassifierObjective(run.model, noisy.x_train[:120], noisy.y_train[:120])
    H = dense_hessian(obj).double()
    eigs = torch.linalg.eigvalsh(H)
    assert got["top_eigenvalue"] == pytest.approx(float(eigs[-1]), rel=1e-3)
    assert abs(got["trace"] - float(torch.trace(H))) < 4 * got["trace_stderr"]
    loss = torch.nn.functional.cross_entropy(run.model.eval()(noisy.x_train), noisy.y_train).item()
    assert got["train_loss"] == pytest.approx(loss, rel=1e-5)
    assert got["test_acc"] == pytest.approx(100 * run.test_acc)

    pair = pair_cells(points, [0, 1], RECIPE, data)[1]
    assert pair.name == "k2_b32_noise0.3" and [p["seed"] for p in pair.params["models"]] == [0, 1]
    metrics = PairTask(models)(pair, torch.device("cpu"))
    nets = [models.run(p, torch.device("cpu"))[0].model for p in pair.params["models"]]
    assert metrics["cka"] == pytest.approx(seed_cka(nets, noisy.x_train[:120], seed=pair.seed), abs=1e-12)
    assert metrics["l2_distance"] == pytest.approx(seed_distance([dict(n.named_parameters()) for n in nets]))
    assert metrics["mc"] <= 0.5 and metrics["line_barrier"] >= metrics["curve_barrier"] - 1e-9


def test_phase_table_averages_seeds_and_skips_incomplete_points():
    m = {"k2_b8_noise0_seed0": {"test_acc": 50.0, "top_eigenvalue": 10.0},
         "k2_b8_noise0_seed1": {"test_acc": 60.0, "top_eigenvalue": 30.0},
         "k4_b8_noise0_seed0": {"test_acc": 80.0, "top_eigenvalue": 1.0}}
    pairs = {"k2_b8_noise0": {"mc": -3.0, "cka": 0.5}, "k4_b8_noise0": {"mc": 0.0, "cka": 0.9}}
    rows = phase_table([(2, 8, 0.0), (4, 8, 0.0)], m, pairs, [0, 1])
    assert len(rows) == 1 and rows[0]["test_acc"] == 55.0 and rows[0]["top_eigenvalue"] == 20.0
    assert rows[0]["test_acc_std"] == pytest.approx(np.std([50, 60], ddof=1)) and rows[0]["mc"] == -3.0


@pytest.mark.parametrize("mc, eig, cka, phase", [(-5.0, 50.0, 0.2, "I"), (-5.0, 1.0, 0.9, "II"),
                                                 (-1.0, 50.0, 0.9, "III"), (0.5, 1.0, 0.3, "IV-A"),
                                                 (-1.99, 9.99, 0.8, "IV-B"), (-2.0, 10.0, 0.8, "III")])
def test_phases_by_hand(mc, eig, cka, phase):
    assert classify({"mc": mc, "top_eigenvalue": eig, "cka": cka}, mc_tolerance=2.0, sharp_at=10.0,
                    cka_split=0.8) == phase
    assert phase in PHASES


def test_default_thresholds_are_the_middles_of_the_grid():
    rows = [{"mc": 0.0, "top_eigenvalue": 1.0, "cka": 0.2}, {"mc": 0.0, "top_eigenvalue": 100.0, "cka": 0.8}]
    d = PhaseDiagrams(batch=rows[:1], noise=rows[1:], failures={}, seconds=0.0, ran=0)
    assert d.classify(mc_tolerance=1.0) == (10.0, 0.5)
    assert [r["phase"] for r in rows] == ["IV-A", "III"]
    assert geometric_middle([4.0, 0.0, 25.0, float("nan")]) == 10.0
    with pytest.raises(ValueError, match="at least 2"):
        pair_cells([(2, 8, 0.0)], [0], RECIPE, load_dataset("mnist1d", num_samples=100))
