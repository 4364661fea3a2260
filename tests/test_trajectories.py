"""Jump and retrain, PHATE and lower-star homology on cases with known answers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from lsutils.data import Dataset
from lsutils.train import TrainConfig, train_classifier
from lsutils.trajectories import (JumpConfig, diagram_summary, jump, jump_and_retrain, lower_star_homology,
                                  phate_embedding, stack_states)


@dataclass(frozen=True)
class LinearSpec:
    """Multinomial logistic regression: with weight decay its loss is strongly convex."""

    features: int = 6
    classes: int = 3
    name: str = "linear"

    def build(self) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(self.features, self.classes))


def toy_data(n: int = 120) -> Dataset:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 6, generator=gen)
    y = (x[:, 0, :3].argmax(1) + (torch.rand(n, generator=gen) < 0.2).long()) % 3  # not separable
    return Dataset("toy", x, y, x[:30], y[:30], num_classes=3)


def test_retraining_from_every_jump_returns_to_the_minimum(tmp_path):
    spec, data = LinearSpec(), toy_data()
    full_batch = dict(batch_size=len(data.x_train), momentum=0.9, weight_decay=0.05, augment=False)
    minimum = train_classifier(spec, data, TrainConfig(epochs=400, lr=0.5, schedule="constant", **full_batch), seed=0,
                               run_dir=tmp_path / "min", progress=False).model.state_dict()
    names = [n for n, _ in spec.build().named_parameters()]
    cfg = JumpConfig(steps=(0.5, 1.0, 2.0), seeds=(0, 1), epochs=400, lr=0.5, **full_batch)
    runs = jump_and_retrain(spec, data, minimum, cfg, root=tmp_path / "jumps", progress=False)
    assert [(r.step, r.seed) for r in runs] == [(s, k) for s in cfg.steps for k in cfg.seeds]
    theta = torch.cat([minimum[n].reshape(-1) for n in names])
    for r in runs:
        start = torch.cat([r.states[0][n].reshape(-1) for n in names])
        end = torch.cat([r.states[-1][n].reshape(-1) for n in names])
        assert len(r.states) == cfg.epochs + 1
        assert (start - theta).norm() > 0.1 * r.step  # it did jump
        assert (end - theta).norm() < 1e-4 * (start - theta).norm()  # and came back
    # the weight matrix moved filter by filter at its own scale; the bias did not move
    j = jump(minimum, names, 1.0, 0)
    w, dw = minimum["1.weight"], j["1.weight"] - minimum["1.weight"]
    torch.testing.assert_close(dw.norm(dim=1), w.norm(dim=1))
    assert torch.equal(j["1.bias"], minimum["1.bias"])
    again = jump_and_retrain(spec, data, minimum, cfg, root=tmp_path / "jumps", progress=False)  # loaded
    assert all(torch.equal(a.states[-1]["1.weight"], b.states[-1]["1.weight"]) for a, b in zip(runs, again))


def test_bad_jump_config_is_refused():
    with pytest.raises(ValueError, match="steps"):
        JumpConfig(steps=(0.5, -1.0))
    with pytest.raises(ValueError, match="lr"):
        JumpConfig(lr=0.0)


def test_stack_states_projects_when_too_large_and_keeps_cosines():
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(5000, generator=gen)
    states = [{"w": base + 0.3 * torch.randn(5000, generator=gen), "b": torch.zeros(3)} for _ in range(6)]
    full = stack_states(states, ["w", "b"])
    assert full.shape == (6, 5003)
    small = stack_states(states, ["w", "b"], max_bytes=1000, dims=4096)
    assert small.shape == (6, 4096)
    def cos(m):
        u = m / np.linalg.norm(m, axis=1, keepdims=True)
        return u @ u.T
    assert np.abs(cos(full) - cos(small)).max() < 0.05


@pytest.mark.filterwarnings("ignore:Graph is disconnected")  # two curves: two components, by design
def test_phate_separates_points_on_two_curves():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 60)
    basis = rng.normal(size=(4, 50))
    curve_a = np.outer(np.cos(3 * t), basis[0]) + np.outer(np.sin(3 * t), basis[1]) + 5 * basis[2]
    curve_b = np.outer(t, basis[3]) - 5 * basis[2]
    x = np.concatenate([curve_a, curve_b]) + 0.01 * rng.normal(size=(120, 50))
    label = np.repeat([0, 1], 60)
    emb = phate_embedding(x, knn=5, seed=0, distance="euclidean")
    assert emb.shape == (120, 2)
    d = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :5]
    assert (label[nearest] == label[:, None]).mean() > 0.99
    assert d[:60, 60:].min() > np.median(np.sort(d, axis=1)[:, 0])  # the gap beats a typical step


def test_one_long_loop_on_a_circle_and_none_on_a_segment():
    t = np.linspace(0, 2 * np.pi, 80, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    h0, h1 = lower_star_homology(circle, circle[:, 1], k=4)
    assert len(h1) == 1 and not np.isfinite(h1[0, 1])  # the loop is never filled
    assert diagram_summary(h0)["essential"] == 1  # one component
    segment = np.stack([np.linspace(0, 1, 80), np.zeros(80)], 1)
    h0, h1 = lower_star_homology(segment, np.sin(7 * segment[:, 0]), k=4)
    assert len(h1) == 0
    # a segment with a bumpy loss has several basins: H0 bars die where they merge
    s = diagram_summary(h0)
    assert s["essential"] == 1 and s["bars"] > 1 and s["total_persistence"] > 0


def test_homology_refuses_mismatched_values():
    with pytest.raises(ValueError, match="one finite value per point"):
        lower_star_homology(np.zeros((5, 2)), np.zeros(4))


def test_a_cycle_without_triangles_has_one_essential_loop():
    """12 points on a circle at k = 2: the k-NN graph is the 12-cycle, no triangle, so
    beta_1 = E - V + components = 12 - 12 + 1 = 1: one H1 bar, born when the last edge
    closes the loop (at the largest value) and never filled."""
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    values = np.sin(3 * t) + 2
    h0, h1 = lower_star_homology(np.c_[np.cos(t), np.sin(t)], values, k=2)
    np.testing.assert_array_equal(h1, [[3.0, np.inf]])
    assert diagram_summary(h1)["essential"] == 1
    # H0: three minima (value 1) merge as the values rise; one essential bar from the global minimum
    assert np.isinf(h0[:, 1]).sum() == 1 and h0[:, 0].min() == pytest.approx(1.0)


def test_one_point_gives_one_essential_component():
    h0, h1 = lower_star_homology(np.zeros((1, 2)), np.array([0.5]), k=3)
    np.testing.assert_array_equal(h0, [[0.5, np.inf]])
    assert h1.shape == (0, 2)
    with pytest.raises(ValueError, match="at least one point"):
        lower_star_homology(np.zeros((0, 2)), np.zeros(0), k=3)


def test_jump_sidecars_record_the_recipe_the_network_was_trained_with(tmp_path):
    from lsutils import artifacts

    spec, data = LinearSpec(), toy_data()
    trained_with = TrainConfig(epochs=3, batch_size=40, lr=0.2, momentum=0.5, weight_decay=0.0, schedule="constant",
                               augment=True)
    state = train_classifier(spec, data, trained_with, seed=0, run_dir=tmp_path / "min",
                             progress=False).model.state_dict()
    cfg = JumpConfig.from_training(trained_with, steps=[0.5], seeds=[0, 1], epochs=2, lr=0.01)
    assert (cfg.momentum, cfg.weight_decay, cfg.batch_size, cfg.augment) == (0.5, 0.0, 40, True)
    jump_and_retrain(spec, data, state, cfg, root=tmp_path / "jumps", progress=False)
    params = artifacts.read_meta(tmp_path / "jumps" / "jumps.json")["params"]
    assert params["config"] == {"steps": [0.5], "seeds": [0, 1], "epochs": 2, "lr": 0.01, "momentum": 0.5,
                                "weight_decay": 0.0, "batch_size": 40, "augment": True}
    assert params["data"] == data.digest and params["start"] == artifacts.digest(dict(state))
    assert len(artifacts.load_json(tmp_path / "jumps" / "jumps.json")) == 2
    for k in (0, 1):  # and every retraining run's own sidecar holds the same recipe
        train = artifacts.read_meta(tmp_path / "jumps" / f"step0.5_seed{k}" / "final.json")["params"]["train"]
        assert (train["weight_decay"], train["augment"], train["epochs"], train["batch_size"]) == (0.0, True, 2, 40)
