"""Paths, curves, connectors and simplexes against landscapes whose answers are known."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch.optim.swa_utils import update_bn

from lsutils import artifacts
from lsutils.connectivity import (ConnectorConfig, Curve, CurveConfig, PathProfile, barrier, evaluate_path,
                                  evaluate_points, fit_curve, mode_connectivity, two_point_connector)
from lsutils.models import resnet
from lsutils.objectives import ClassifierObjective, FunctionObjective
from lsutils.simplex import SimplexConfig, StarComplex, fit_simplex, structure_samples
from lsutils.wedges import (WedgeModel, descend, intersection_point, subspace_sweep, threshold_dimension,
                            two_optima)

HALF_WIDTH = 0.15  # the valley: zero loss within 0.15 of the unit circle in the first two coordinates


def _annulus(t: torch.Tensor) -> torch.Tensor:
    r = (t[:2].pow(2).sum() + 1e-12).sqrt()
    return torch.clamp((r - 1).abs() - HALF_WIDTH, min=0) ** 2 + 0.5 * t[2:].pow(2).sum()


@pytest.fixture
def ring():
    """Two minima 120 degrees apart on a curved valley; the chord's midpoint lies at radius 1/2."""
    a = torch.zeros(6, dtype=torch.float64)
    a[0], a[1] = 0.5, math.sqrt(3) / 2
    b = a.clone()
    b[1] = -b[1]
    return FunctionObjective(_annulus, a, key="annulus"), {"theta": a}, {"theta": b}


RIDGE = (1 - 0.5 - HALF_WIDTH) ** 2  # the loss at the chord's midpoint, computed by hand


def test_linear_barrier_equals_the_ridge_height(ring):
    obj, a, b = ring
    line = evaluate_path(obj, Curve.line(a, b), points=21)
    assert line.values["loss"][0] == 0 and line.values["loss"][-1] == 0
    assert line.barrier("loss") == pytest.approx(RIDGE, rel=1e-9)
    assert int(np.argmax(line.values["loss"])) == 10  # at t = 1/2


def test_trained_bezier_curve_follows_the_valley(ring):
    obj, a, b = ring
    curve, history = fit_curve(obj, a, b, CurveConfig(steps=300, lr=0.05, points=41), progress=False)
    prof = evaluate_path(obj, curve, points=101)
    assert prof.barrier("loss") < 0.05 * RIDGE
    assert curve.distance_from_chord() > 0.3  # it left the chord
    assert np.mean(history[-50:]) < np.mean(history[:50])


def test_polychain_curve_follows_the_valley(ring):
    obj, a, b = ring
    curve, _ = fit_curve(obj, a, b, CurveConfig(kind="polychain", bends=4, steps=300, lr=0.05), progress=False)
    assert evaluate_path(obj, curve, points=101).barrier("loss") < 0.05 * RIDGE


def test_two_point_connector_follows_the_valley(ring):
    obj, a, b = ring
    conn, _ = two_point_connector(obj, a, b, ConnectorConfig(steps=300, lr=0.05), progress=False)
    bend = conn.controls[0]["theta"]
    chord = b["theta"] - a["theta"]
    # the bend kept its place along the chord (the projection) and moved into the valley
    assert float((bend - a["theta"]) @ chord / (chord @ chord)) == pytest.approx(0.5, abs=1e-9)
    assert 1 - HALF_WIDTH - 1e-3 <= float(bend[:2].norm()) <= 1 + HALF_WIDTH
    assert evaluate_path(obj, conn, points=101).barrier("loss") < 0.05 * RIDGE


def test_convex_objective_curve_stays_on_the_chord():
    """A strictly convex quadratic whose minimum is the chord's midpoint: the trained Bezier curve
    stays on the chord's line, and neither path has a barrier."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(8, 8, generator=gen, dtype=torch.float64)
    hess = q @ q.T + 0.5 * torch.eye(8, dtype=torch.float64)
    centre = torch.randn(8, generator=gen, dtype=torch.float64)
    v = torch.randn(8, generator=gen, dtype=torch.float64)
    obj = FunctionObjective(lambda t: 0.5 * (t - centre) @ hess @ (t - centre), centre, key="convex")
    a, b = {"theta": centre + v}, {"theta": centre - v}
    assert evaluate_path(obj, Curve.line(a, b), points=41).barrier() == pytest.approx(0.0, abs=1e-12)
    curve, _ = fit_curve(obj, a, b, CurveConfig(steps=400, lr=0.002), progress=False)
    assert curve.distance_from_chord() < 0.02
    assert evaluate_path(obj, curve, points=41).barrier() < 1e-3 * float(obj(a))


def test_curves_pass_through_their_ends_and_bezier_on_chord_is_the_line():
    a, b = {"w": torch.tensor([0.0, 1.0])}, {"w": torch.tensor([2.0, -1.0])}
    for kind in ("bezier", "polychain"):
        c = Curve.on_chord(kind, a, b, bends=5)
        assert torch.equal(c.at(0.0)["w"], a["w"]) and torch.allclose(c.at(1.0)["w"], b["w"])
        for t in (0.1, 0.37, 0.5, 0.9):
            assert torch.allclose(c.at(t)["w"], a["w"] + t * (b["w"] - a["w"]), atol=1e-6)
            assert sum(c.weights(t)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="kind = 'spline'; allowed: bezier, polychain"):
        Curve("spline", (a, b))


def test_mode_connectivity_by_hand():
    # ends 10 and 20: mean 15; the largest deviation is 31 at the middle -> mc = 15 - 31 = -16 (a barrier)
    assert mode_connectivity([10.0, 18.0, 31.0, 22.0, 20.0]) == -16.0
    # a curve below its ends: 15 - 9 = +6
    assert mode_connectivity([10.0, 9.0, 12.0, 20.0]) == 6.0
    # flat: 0
    assert mode_connectivity([5.0, 5.0, 5.0]) == 0.0
    # a tie between a bump of +4 and a dip of -4: the bump (the barrier) is taken
    assert mode_connectivity([10.0, 14.0, 6.0, 10.0]) == -4.0
    assert mode_connectivity([10.0, 6.0, 14.0, 10.0]) == -4.0
    # the ends can be the largest deviation: mc = 15 - 20 = -5
    assert mode_connectivity([10.0, 14.0, 20.0]) == -5.0
    with pytest.raises(ValueError, match="at least 2"):
        mode_connectivity([1.0])


def test_barrier_by_hand():
    assert barrier([1.0, 3.0, 2.0]) == pytest.approx(3.0 - 1.5)
    assert barrier([2.0, 1.0, 0.0]) == 0.0  # on the line: no barrier
    prof = PathProfile(np.linspace(0, 1, 3), {"loss": np.array([1.0, 3.0, 2.0]), "accuracy": np.array([.9, .5, .8])})
    assert prof.barrier("error") == pytest.approx(50.0 - 15.0)
    assert prof.mc == pytest.approx(15.0 - 50.0)
    assert PathProfile.from_dict(prof.as_dict()).barrier() == prof.barrier()


def _batchnorm_pair():
    torch.manual_seed(0)
    nets = [resnet(depth=8, dim=1, in_channels=1) for _ in range(2)]
    x, y = torch.randn(256, 1, 40), torch.randint(0, 10, (256,))
    for net in nets:  # end models whose statistics were computed on these inputs by torch itself
        update_bn([(x[i:i + 64],) for i in range(0, 256, 64)], net)
        net.eval()
    return nets, x, y


def test_batchnorm_recomputed_at_the_ends_reproduces_the_end_models():
    nets, x, y = _batchnorm_pair()
    obj = ClassifierObjective(copy.deepcopy(nets[0]), x, y, batch_size=64)
    b = {k: v.detach() for k, v in nets[1].named_parameters()}
    line = evaluate_path(obj, Curve.line(obj.params, b), points=3)
    for end, t in ((nets[0], 0), (nets[1], -1)):
        own = ClassifierObjective(end, x, y).metrics()
        assert line.values["loss"][t] == pytest.approx(own["loss"], rel=1e-5)
        assert line.values["accuracy"][t] == own["accuracy"]
    for k, v in obj.fit_buffers(b).items():  # the statistics themselves equal torch's
        assert torch.allclose(v.float(), dict(nets[1].named_buffers())[k].float(), atol=1e-6), k
    # fixed statistics (the first network's) evaluate the second network wrongly
    fixed = evaluate_path(obj, Curve.line(obj.params, b), points=3, bn="fixed")
    assert abs(fixed.values["loss"][-1] - line.values["loss"][-1]) > 1e-3
    with pytest.raises(ValueError, match="bn = 'none'; allowed: recompute, fixed"):
        evaluate_points(obj, [b], bn="none")


def test_train_loss_uses_batch_statistics_and_leaves_the_objective_unchanged():
    nets, x, y = _batchnorm_pair()
    obj = ClassifierObjective(nets[0], x, y, train_batch=256)
    before = {k: v.clone() for k, v in obj.buffers.items()}
    loss = obj.train_loss(obj.params, torch.Generator().manual_seed(0)).detach()
    ref = copy.deepcopy(nets[0]).train()
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(256, (256,), generator=gen)
    with torch.no_grad():
        expected = float(torch.nn.functional.cross_entropy(ref(x[idx]), y[idx]))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert all(torch.equal(before[k], obj.buffers[k]) for k in before)
    assert not obj.model.training


def test_curve_training_resumes_to_the_same_curve(ring, tmp_path):
    obj, a, b = ring
    cfg = CurveConfig(steps=60, lr=0.05)
    full, _ = fit_curve(obj, a, b, cfg, path=tmp_path / "full.pt", progress=False)
    # an interrupted run: the first 20 steps saved, then the rest
    import lsutils.connectivity as conn

    calls = {"n": 0}
    real = obj.train_loss

    def interrupting(params, gen):
        calls["n"] += 1
        if calls["n"] > 25:
            raise KeyboardInterrupt
        return real(params, gen)

    obj.train_loss = interrupting

    def step(live, gen):  # what fit_curve minimizes
        return obj.train_loss(Curve("bezier", (a, b), live).at(float(torch.rand((), generator=gen))), gen)

    with pytest.raises(KeyboardInterrupt):
        conn.optimize(Curve.on_chord("bezier", a, b, 3).controls, step, cfg, path=tmp_path / "part.pt",
                      key={"k": 1}, progress=False, save_every=20)
    obj.train_loss = real
    assert artifacts.load_torch(tmp_path / "part.pt")["step"] == 20
    resumed, _ = conn.optimize(Curve.on_chord("bezier", a, b, 3).controls, step, cfg, path=tmp_path / "part.pt",
                               key={"k": 1}, progress=False, save_every=20)
    assert torch.allclose(resumed[0]["theta"], full.controls[0]["theta"], atol=1e-12)
    # a rerun loads; a changed end retrains
    again, _ = fit_curve(obj, a, b, cfg, path=tmp_path / "full.pt", progress=False)
    assert torch.equal(again.controls[0]["theta"], full.controls[0]["theta"])
    moved = {"theta": b["theta"] + 0.01}
    other, _ = fit_curve(obj, a, moved, cfg, path=tmp_path / "full.pt", progress=False)
    assert not torch.equal(other.controls[0]["theta"], full.controls[0]["theta"])


def _plane_objective():
    """Loss 0.05 on the plane {theta_2 = 1, theta_3.. = 0}, rising quadratically off it; three
    minima on the plane."""
    def fn(t):
        return 0.05 + (t[2] - 1) ** 2 + t[3:].pow(2).sum()

    vertices = []
    for ang in (0.0, 2 * math.pi / 3, 4 * math.pi / 3):
        v = torch.zeros(8, dtype=torch.float64)
        v[0], v[1], v[2] = 2 * math.cos(ang), 2 * math.sin(ang), 1.0
        vertices.append({"theta": v})
    return FunctionObjective(fn, vertices[0]["theta"], key="plane"), vertices


@pytest.mark.parametrize("connectors, volume", [(1, 0.0), (2, 0.0), (2, 0.01)])
def test_simplex_reaches_the_low_loss_plane(connectors, volume):
    obj, vertices = _plane_objective()
    cfg = SimplexConfig(connectors=connectors, steps=400, lr=0.05, spread=1.0, samples=4, volume=volume)
    before, after, _ = fit_simplex(obj, vertices, cfg, progress=False)
    assert structure_samples(obj, before, cfg)["loss"].mean() > 1.0  # the connectors start off the plane
    assert structure_samples(obj, after, cfg)["loss"].mean() == pytest.approx(0.05, abs=1e-4)
    xy, points = after.cut(4)
    assert len(points) == 15 and xy.shape == (15, 2)
    assert evaluate_points(obj, points)["loss"].max() == pytest.approx(0.05, abs=1e-4)
    if volume:
        _, plain, _ = fit_simplex(obj, vertices, SimplexConfig(connectors=2, steps=400, lr=0.05, spread=1.0,
                                                               samples=4), progress=False)
        assert after.log_volumes().mean() > plain.log_volumes().mean()  # the term made it larger


def test_simplex_cut_before_training_is_the_plane_through_the_solutions():
    vertices = [{"w": torch.randn(5, generator=torch.Generator().manual_seed(i))} for i in range(3)]
    star = StarComplex.start(vertices, SimplexConfig(spread=0.0))
    xy, points = star.cut(6)
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    for p, q in zip(points, xy):  # barycentric weights of q on the triangle, applied to the solutions
        w = np.linalg.solve(np.vstack([corners.T, np.ones(3)]), np.append(q, 1.0))
        assert torch.allclose(p["w"], sum(float(wi) * v["w"] for wi, v in zip(w, vertices)), atol=1e-5)
    with pytest.raises(ValueError, match="exactly 3"):
        StarComplex.start(vertices[:2], SimplexConfig()).cut(3)


def test_simplex_volume_by_hand():
    # the triangle (0,0), (3,0), (0,4) has area 6; a segment of length 5 has volume 5
    star = StarComplex([{"w": torch.tensor([0.0, 0.0])}],
                       [{"w": torch.tensor([3.0, 0.0])}, {"w": torch.tensor([0.0, 4.0])}])
    assert float(star.log_volumes().exp()) == pytest.approx(6.0)
    seg = StarComplex([{"w": torch.tensor([0.0, 0.0])}], [{"w": torch.tensor([3.0, 4.0])}])
    assert float(seg.log_volumes().exp()) == pytest.approx(5.0)


def test_wedge_model():
    model = WedgeModel(dim=40, wedges=4, short=5)
    ends = descend(model, torch.randn(8, 40, generator=torch.Generator().manual_seed(1)), steps=1500)
    assert (model.loss(ends) < 1e-6).all()  # optimization reaches the wedges
    a, b = two_optima(model, seed=1, steps=1500)
    assert model.wedge_of(a) != model.wedge_of(b) and torch.equal(a, ends[0])
    p = intersection_point(model, a, b)
    assert float(model.wedge_losses(p)[model.wedge_of(a)]) == 0 and float(model.wedge_losses(p)[model.wedge_of(b)]) == 0
    obj = model.objective(a)
    A, B = {"theta": a}, {"theta": b}
    line = evaluate_path(obj, Curve.line(A, B), points=41)
    two = evaluate_path(obj, Curve("polychain", (A, B), [{"theta": p}]), points=41)
    assert line.barrier() > 1.0 and two.barrier() < 1e-9
    dims = [1, 2, 3, 4, 5, 6, 8, 10]
    losses = subspace_sweep(model, dims, trials=3, steps=1500)
    assert np.median(losses[:3], axis=1).min() > 0.1  # below n = 5 the subspace misses every wedge
    d = threshold_dimension(dims, losses)
    assert d is not None and 5 <= d <= 8
    with pytest.raises(ValueError, match="short = 40; allowed: fewer than dim = 40"):
        WedgeModel(dim=40, short=40)
