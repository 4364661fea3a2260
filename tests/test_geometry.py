"""Training geometry, the random logit model and the Goldilocks sweep against exact answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lsutils import pinn
from lsutils.config import TrainingGeometryParams
from lsutils.curvature import count_outliers
from lsutils.data import Dataset
from lsutils.directions import flatten
from lsutils.geometry import (batch_statistics, class_gradients, class_overlap, energy_fractions, epoch_geometry,
                              spectrum, term_confinement)
from lsutils.goldilocks import (GoldilocksRecipe, GoldilocksTask, excess_curvature, goldilocks_cells,
                                threshold_dimension, threshold_table)
from lsutils.hessian import dense_hessian
from lsutils.logit_model import LogitModel, analyze
from lsutils.objectives import ClassifierObjective


def _mlp(seed: int = 0, n: int = 48, classes: int = 3) -> ClassifierObjective:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, classes)).double()
    x = torch.randn(n, 5, dtype=torch.float64)
    return ClassifierObjective(net, x, torch.arange(n) % classes, batch_size=16)


def _bn_net(seed: int = 0) -> ClassifierObjective:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3)).double()
    net.train()
    x = torch.randn(40, 5, dtype=torch.float64)
    with torch.no_grad():  # running statistics that differ from any batch's
        net(x * 3 + 1)
    return ClassifierObjective(net, x, torch.arange(40) % 3, batch_size=40)


# ----------------------------------------------------------------------- the random model
def test_random_model_has_exactly_c_outliers_for_well_separated_class_means():
    for classes in (4, 10):
        out = analyze(LogitModel(classes=classes, features=64, per_class=40, separation=3.0, logit_scale=3.0))
        assert out["outliers"] == classes
        assert out["gap_at_c"] > 2 * out["typical_gap"]
        assert out["fractions"][classes - 1] > 0.95  # the gradient is confined to the top C
        assert out["max_gh_difference"] < 1e-12  # logits linear in W: H = G


def test_random_model_at_uniform_probabilities_has_c_minus_one_equal_outliers():
    out = analyze(LogitModel(classes=6, features=48, per_class=30, logit_scale=0.0))
    vals = np.asarray(out["eigenvalues"])
    assert out["outliers"] == 5
    assert np.ptp(vals[:5]) < 1e-10 * vals[0]  # (1/C)(I - 11^T/C) (x) S: each of S's eigenvalues C - 1 times


def test_random_model_curvature_falls_as_probabilities_freeze():
    tops = [analyze(LogitModel(classes=4, features=24, per_class=20, logit_scale=b))["eigenvalues"][0]
            for b in (3.0, 10.0, 30.0)]
    assert tops[0] > 10 * tops[1] > 100 * tops[2]


def test_random_model_hessian_is_the_dense_hessian():
    model = LogitModel(classes=3, features=5, per_class=7, logit_scale=2.0)
    out = analyze(model, k=15)
    exact = torch.linalg.eigvalsh(dense_hessian(model.objective())).flip(0)
    assert np.allclose(out["eigenvalues"], exact.numpy(), atol=1e-12)


# ----------------------------------------------------------------------- measures
def test_energy_fractions_and_class_overlap_by_hand():
    basis = torch.eye(5, dtype=torch.float64)[:3]
    assert energy_fractions(basis, torch.tensor([1.0, 2.0, 0.0, 2.0, 0.0], dtype=torch.float64)).tolist() == \
        pytest.approx([1 / 9, 5 / 9, 5 / 9])
    grads = torch.tensor([[1.0, 1.0, 0, 0, 0], [0, 0, 0, 3.0, 0]], dtype=torch.float64)
    assert class_overlap(basis, grads) == pytest.approx(0.5)  # one of two directions inside
    assert class_overlap(basis, grads[:1]) == pytest.approx(1.0)
    assert math.isnan(class_overlap(basis, torch.zeros(2, 5, dtype=torch.float64)))


def test_class_gradients_are_the_per_class_mean_gradients():
    obj = _mlp()
    cg = class_gradients(obj, 3)
    names = list(obj.params)
    for c in range(3):
        mask = obj.y == c
        sub = ClassifierObjective(obj.model, obj.x[mask], obj.y[mask])
        g = torch.func.grad(sub.loss)(sub.params)
        assert torch.allclose(cg[c], flatten(g, names), atol=1e-12)


def test_class_gradients_in_training_mode_average_to_the_full_gradient():
    obj = batch_statistics(_bn_net(), batch_size=20)
    cg = class_gradients(obj, 3)
    counts = torch.bincount(obj.y, minlength=3).double()
    full = flatten(torch.func.grad(obj.loss)(obj.params), list(obj.params))
    assert torch.allclose((counts[:, None] * cg).sum(0) / len(obj.y), full, atol=1e-12)


def test_batch_statistics_is_the_training_mode_forward_pass():
    obj = _bn_net()
    running = {k: v.clone() for k, v in obj.model.state_dict().items() if "running" in k}
    train = batch_statistics(obj, batch_size=20)
    direct = 0.0
    model = obj.model
    model.train()
    with torch.no_grad():
        for i in (0, 20):
            xb, yb = obj.x[i:i + 20], obj.y[i:i + 20]
            direct += float(nn.functional.cross_entropy(model(xb), yb, reduction="sum"))
    model.eval()
    for k, v in running.items():  # the reference pass above changed them; the objective must not have
        obj.model.state_dict()[k].copy_(v)
    assert float(train.loss(train.params)) == pytest.approx(direct / 40, abs=1e-12)
    assert abs(float(train.loss(train.params)) - float(obj.loss(obj.params))) > 1e-3  # eval mode differs
    with pytest.raises(ValueError, match="batch_size"):
        batch_statistics(obj, 1)


def test_spectrum_matches_the_dense_hessian_and_g_term():
    obj = ClassifierObjective(nn.Linear(4, 3).double(), torch.randn(60, 4, dtype=torch.float64), torch.arange(60) % 3)
    exact = torch.linalg.eigvalsh(dense_hessian(obj)).flip(0)
    for op in ("hessian", "gauss_newton"):  # rank (C - 1)(F + 1) = 10: the top 10 span H's range, and g lies in it
        out = spectrum(obj, op, 3, k=10, tol=1e-8, max_steps=15)
        assert np.allclose(out["eigenvalues"], exact[:10].numpy(), atol=1e-8)
        assert out["outliers"] == count_outliers(exact[:10].numpy())
        assert out["gradient_fractions"][-1] == pytest.approx(1.0, abs=1e-8)
    with pytest.raises(ValueError, match="num_classes"):
        spectrum(obj, "hessian", 3, k=3)
    with pytest.raises(ValueError, match="operator"):
        spectrum(obj, "fisher", 3, k=6)


def test_epoch_geometry_against_dense_eigenvectors_and_trace():
    obj = _mlp(n=30)
    h = dense_hessian(obj)
    vals, vecs = torch.linalg.eigh(h)
    top = vecs[:, -4:].flip(1).T
    out = epoch_geometry(obj, k=4, trace_probes=400, minibatches=2, batch_size=10, tol=1e-9, max_steps=obj.num_params)
    g = flatten(torch.func.grad(obj.loss)(obj.params), list(obj.params))
    assert np.allclose(out["eigenvalues"], vals.flip(0)[:4].numpy(), atol=1e-7)
    assert np.allclose(out["full_fractions"], energy_fractions(top, g), atol=1e-6)
    assert abs(out["trace"] - float(vals.sum())) < 4 * out["trace_stderr"] + 1e-9
    assert len(out["minibatch_fractions"]) == 4 and out["gradient_norm"] == pytest.approx(float(g.norm()))


def test_pinn_term_fractions_reach_one_in_the_full_space():
    problem = pinn.ConvectionProblem(5.0)
    obj = pinn.PinnObjective(pinn.PinnMLP(3, 2).double(), problem, problem.sample(32, 8, 8, seed=0,
                                                                                   dtype=torch.float64))
    out = term_confinement(obj, k=obj.num_params, tol=1e-8, max_steps=obj.num_params)
    assert set(out["fractions"]) == {"loss", "residual", "initial", "boundary"}
    for frac in out["fractions"].values():
        assert np.all(np.diff(frac) >= -1e-12) and frac[-1] == pytest.approx(1.0, abs=1e-6)


# ----------------------------------------------------------------------- Goldilocks
def test_excess_curvature_of_known_matrices():
    assert excess_curvature(torch.diag(torch.tensor([1.0, -1.0, 2.0, -2.0])))["kappa"] == pytest.approx(0.0)
    out = excess_curvature(torch.diag(torch.tensor([3.0, 1.0, -1.0, 1.0])))
    assert out["kappa"] == pytest.approx(4 / math.sqrt(12)) and out["positive_fraction"] == 0.75 and out["top"] == 3.0


def test_threshold_dimension_and_table():
    rows = [{"skip": True, "radius": 1.0, "dim": 0, "test_acc": 90.0, "kappa": math.nan, "positive_fraction": math.nan},
            {"skip": True, "radius": 1.0, "dim": 4, "test_acc": 50.0, "kappa": 1.0, "positive_fraction": 0.6},
            {"skip": True, "radius": 1.0, "dim": 16, "test_acc": 81.0, "kappa": 0.5, "positive_fraction": 0.5},
            {"skip": True, "radius": 2.0, "dim": 0, "test_acc": 70.0, "kappa": math.nan, "positive_fraction": math.nan},
            {"skip": True, "radius": 2.0, "dim": 4, "test_acc": 60.0, "kappa": -1.0, "positive_fraction": 0.2}]
    assert threshold_dimension(rows[1:3], 90.0) == 16.0
    assert math.isnan(threshold_dimension(rows[1:2], 90.0))
    table = threshold_table(rows, 0.9)
    assert [(t["radius"], t["reference"], t["threshold"]) for t in table][0] == (1.0, 90.0, 16.0)
    assert math.isnan(table[1]["threshold"]) and table[1]["full_acc"] == 70.0 and table[1]["kappa"] == -1.0


def test_goldilocks_cells_train_and_measure(tmp_path, monkeypatch):
    monkeypatch.setenv("LSUTILS_DATA", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 1, 16, generator=g)
    y = (x[:, 0, :8].sum(1) > 0).long() + 2 * (x[:, 0, 8:].sum(1) > 0).long()
    data = Dataset("toy", x[:64], y[:64], x[64:], y[64:], num_classes=4)
    recipe = GoldilocksRecipe(depth=8, width=2, steps=30, batch_size=16, lr=0.05, hessian_samples=32,
                              curvature_dims=4)
    cells = goldilocks_cells([1.0], [6], recipe, data, seed=0)
    assert [c.params["dim"] for c in cells] == [0, 6, 0, 6]
    task = GoldilocksTask(data, recipe)
    full, sub = task(cells[0], torch.device("cpu")), task(cells[1], torch.device("cpu"))
    assert math.isnan(full["kappa"]) and sub["curvature_dims"] == 4
    assert 0.0 <= sub["positive_fraction"] <= 1.0 and abs(sub["kappa"]) <= 2.0 + 1e-9  # |kappa| <= sqrt(4)
    assert sub["train_loss"] < math.log(4) + 0.5 and full["train_loss"] < sub["train_loss"] + 0.5
    again = task(cells[1], torch.device("cpu"))
    assert again == sub  # seeded: the same cell gives the same numbers


def test_measured_epochs_are_log_spaced_and_include_both_ends():
    p = TrainingGeometryParams()
    assert p.epochs(30) == [0, 1, 2, 4, 8, 15, 30]
    assert TrainingGeometryParams(epoch_points=0).epochs(3) == [0, 1, 2, 3]
    assert p.epochs(1) == [0, 1]


def test_minibatch_gradients_come_from_the_pool():
    obj = _mlp(n=12)
    pool = (torch.randn(40, 5, dtype=torch.float64), torch.arange(40) % 3)
    own = epoch_geometry(obj, k=3, trace_probes=2, minibatches=2, batch_size=8, tol=1e-6, max_steps=obj.num_params)
    drawn = epoch_geometry(obj, k=3, trace_probes=2, minibatches=2, batch_size=8, tol=1e-6, max_steps=obj.num_params,
                           pool=pool)
    assert own["full_fractions"] == drawn["full_fractions"]  # the loss and its eigenvectors are the objective's
    assert own["minibatch_fractions"] != drawn["minibatch_fractions"]
    whole = epoch_geometry(obj, k=3, trace_probes=2, minibatches=1, batch_size=12, tol=1e-6, max_steps=obj.num_params)
    assert np.allclose(whole["minibatch_fractions"], whole["full_fractions"])  # a minibatch of all is the full batch
