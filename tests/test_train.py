"""Classifier training: schedules, augmentation, determinism, resume, train-or-load."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lsutils import artifacts
from lsutils.data import Dataset
from lsutils.models import ResNetSpec
from lsutils.objectives import ClassifierObjective, stack_params
from lsutils.train import (TrainConfig, augment_batch, evaluate, load_run, lr_at, train_classifier,
                           train_or_load, trajectory)

SPEC = ResNetSpec(depth=8, width=1, skip=True, dim=1, in_channels=1)
CFG = TrainConfig(epochs=4, batch_size=32, lr=0.05, weight_decay=5e-4, schedule="cosine")


def toy_data(n_train=160, n_test=64, seed=0) -> Dataset:
    """Sinusoids whose class is their frequency (1..10 cycles), random phase: learnable
    and unchanged in kind by a small shift."""
    g = torch.Generator().manual_seed(seed)

    def make(n):
        y = torch.randint(0, 10, (n,), generator=g)
        t = torch.arange(40.0)
        phase = 2 * math.pi * torch.rand(n, 1, generator=g)
        x = torch.sin(2 * math.pi * (y[:, None] + 1.0) * t[None] / 40 + phase)
        return (x + 0.1 * torch.randn(n, 40, generator=g)).unsqueeze(1), y

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    return Dataset("toy", xtr, ytr, xte, yte)


def test_lr_schedules():
    cos = TrainConfig(epochs=10, lr=0.1, schedule="cosine")
    assert lr_at(0, cos) == pytest.approx(0.1) and lr_at(5, cos) == pytest.approx(0.05)
    step = TrainConfig(epochs=8, lr=0.1, schedule="step")
    assert [round(lr_at(e, step), 6) for e in range(8)] == [0.1] * 4 + [0.01] * 2 + [0.001] * 2
    assert lr_at(7, TrainConfig(lr=0.3, schedule="constant")) == 0.3
    with pytest.raises(ValueError, match="schedule = 'linear'; allowed: cosine, step, constant"):
        TrainConfig(schedule="linear")


def test_shift_augmentation_is_a_translation_with_zeros():
    x = torch.arange(1.0, 41.0).repeat(50, 1).unsqueeze(1)
    out = augment_batch(x, 4, torch.Generator().manual_seed(0))
    shifts = set()
    for row in out[:, 0]:
        first = int(row[row > 0][0])  # value 1 + (index of the first original sample kept)
        lead = int((row == 0).cumprod(0).sum())  # zeros padded on the left
        s = lead - (first - 1)
        assert -4 <= s <= 4
        expected = torch.zeros(40)
        src = torch.arange(40) - s
        ok = (src >= 0) & (src < 40)
        expected[ok] = x[0, 0, src[ok]]
        assert torch.equal(row, expected)
        shifts.add(s)
    assert len(shifts) > 5


def test_image_augmentation_is_crop_and_flip():
    x = torch.randn(64, 3, 8, 8)
    out = augment_batch(x, 2, torch.Generator().manual_seed(1))
    padded = F.pad(x, [2, 2, 2, 2])
    flips = 0
    for i in range(64):
        crops = [padded[i, :, a:a + 8, b:b + 8] for a in range(5) for b in range(5)]
        if any(torch.equal(out[i], c) for c in crops):
            continue
        assert any(torch.equal(out[i], c.flip(-1)) for c in crops)
        flips += 1
    assert 10 < flips < 54
    assert torch.equal(augment_batch(x, 0, torch.Generator(), flip=False), x)


def test_training_learns(tmp_path):
    cfg = TrainConfig(epochs=6, batch_size=32, lr=0.05)
    run = train_classifier(SPEC, toy_data(n_train=320), cfg, seed=3, run_dir=tmp_path, progress=False)
    assert run.test_acc > 0.9, run.history  # a real fit; chance is 0.1


def test_training_is_deterministic(tmp_path):
    data = toy_data()
    a = train_classifier(SPEC, data, CFG, seed=3, run_dir=tmp_path / "a", progress=False)
    b = train_classifier(SPEC, data, CFG, seed=3, run_dir=tmp_path / "b", progress=False)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = train_classifier(SPEC, data, CFG, seed=4, run_dir=tmp_path / "c", progress=False)
    assert not torch.equal(sa["fc.weight"], c.model.state_dict()["fc.weight"])
    # the trajectory: initialisation plus one checkpoint per epoch, the last one the model
    traj = trajectory(tmp_path / "a")
    assert len(traj) == CFG.epochs + 1
    assert all(torch.equal(traj[-1][k], sa[k]) for k in sa)
    assert evaluate(a.model, data.x_test, data.y_test) == pytest.approx(
        (a.history["test_loss"][-1], a.history["test_acc"][-1]))


def test_interrupted_run_resumes_to_identical_weights(tmp_path):
    data = toy_data()
    full = train_classifier(SPEC, data, CFG, seed=0, run_dir=tmp_path / "full", progress=False)
    part = train_classifier(SPEC, data, CFG, seed=0, run_dir=tmp_path / "part", progress=False,
                            stop_after=2)
    assert len(part.history["test_acc"]) == 2
    assert not artifacts.exists(tmp_path / "part" / "final.json")
    resumed = train_classifier(SPEC, data, CFG, seed=0, run_dir=tmp_path / "part", progress=False)
    assert resumed.history == full.history
    s1, s2 = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


def test_train_or_load(tmp_path):
    data = toy_data()
    cfg = TrainConfig(epochs=2, batch_size=64)
    first = train_or_load(SPEC, data, cfg, seed=0, run_dir=tmp_path / "r", progress=False)
    assert not first.loaded
    again = train_or_load(SPEC, data, cfg, seed=0, run_dir=tmp_path / "r", progress=False)
    assert again.loaded and again.history == first.history
    assert torch.equal(again.model.state_dict()["fc.weight"], first.model.state_dict()["fc.weight"])
    other = train_or_load(SPEC, data, TrainConfig(epochs=2, batch_size=32), seed=0,
                          run_dir=tmp_path / "r", progress=False)
    assert not other.loaded  # a different recipe is retrained, not reused
    with pytest.raises(artifacts.ArtifactMissingError):
        load_run(SPEC, tmp_path / "nothing")


def test_classifier_objective_is_the_eval_mode_cross_entropy():
    torch.manual_seed(0)
    data = toy_data(n_test=50)
    model = SPEC.build()
    model.train()
    for _ in range(3):  # give BatchNorm non-trivial running statistics
        model(data.x_train)
    obj = ClassifierObjective(model, data.x_test, data.y_test, batch_size=16)
    model.eval()
    with torch.no_grad():
        out = model(data.x_test)
    torch.testing.assert_close(obj(), F.cross_entropy(out, data.y_test))
    m = obj.metrics()
    assert m["accuracy"] == pytest.approx(float((out.argmax(1) == data.y_test).float().mean()))
    assert m["loss"] == pytest.approx(float(obj()), rel=1e-5)
    points = [{k: v + 0.01 * i * torch.randn_like(v) for k, v in obj.params.items()} for i in range(3)]
    torch.testing.assert_close(obj.batched(stack_params(points), chunk_size=2),
                               torch.stack([obj(p) for p in points]))
    with pytest.raises(ValueError, match="samples"):
        ClassifierObjective(model, data.x_test, data.y_test[:3])


def test_training_from_given_weights_starts_there_and_is_its_own_run(tmp_path):
    data = toy_data()
    base = train_classifier(SPEC, data, CFG, seed=0, run_dir=tmp_path / "base", progress=False)
    start = {k: v.clone() for k, v in base.model.state_dict().items()}
    cfg = TrainConfig(epochs=1, batch_size=32, lr=1e-3, schedule="constant", augment=False)
    run = train_or_load(SPEC, data, cfg, seed=0, run_dir=tmp_path / "from", init=start, progress=False)
    first = trajectory(run.run_dir)[0]
    assert all(torch.equal(first[k], start[k]) for k in start)  # epoch 0 is the given weights
    # a different start is a different run: it retrains instead of loading
    other = {k: (v + 0.01 if v.is_floating_point() else v) for k, v in start.items()}
    again = train_or_load(SPEC, data, cfg, seed=0, run_dir=tmp_path / "from", init=other, progress=False)
    assert not again.loaded
    assert torch.equal(trajectory(again.run_dir)[0]["conv1.weight"], other["conv1.weight"])
    assert train_or_load(SPEC, data, cfg, seed=0, run_dir=tmp_path / "from", init=other, progress=False).loaded


def test_a_diverging_run_is_refused_and_nothing_is_saved_as_finished(tmp_path):
    from lsutils.train import TrainingDiverged

    bad = TrainConfig(epochs=3, batch_size=32, lr=1e6, momentum=0.9, schedule="constant")
    run_dir = tmp_path / "resnet8_skip_seed0"
    with pytest.raises(TrainingDiverged, match=r"run resnet8_skip_seed0 diverged at epoch 1, step \d+: .*"
                                               r"learning rate \(1e\+06\) is likely too large"):
        train_or_load(SPEC, toy_data(), bad, seed=0, run_dir=run_dir, progress=False)
    assert not artifacts.exists(run_dir / "final.json")
    with pytest.raises(artifacts.ArtifactMissingError):
        load_run(SPEC, run_dir)
    with pytest.raises(ValueError, match="lr = inf is not finite; allowed: a finite number"):
        TrainConfig(lr=float("inf"))


def test_a_run_is_retrained_when_its_data_change(tmp_path):
    data = toy_data()
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.05)
    first = train_or_load(SPEC, data, cfg, seed=0, run_dir=tmp_path / "r", progress=False)
    assert not first.loaded
    assert train_or_load(SPEC, data, cfg, seed=0, run_dir=tmp_path / "r", progress=False).loaded
    y = data.y_train.clone()
    y[0] = (y[0] + 1) % 10  # one label changed: same name, same sizes, other data
    changed = Dataset(data.name, data.x_train, y, data.x_test, data.y_test)
    assert not train_or_load(SPEC, changed, cfg, seed=0, run_dir=tmp_path / "r", progress=False).loaded
