"""Directions and grids against exact answers: filter norms, closed-form quadratics,
the objective at the origin, resume, non-finite values, VTK round trip."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from torch import nn

from lsutils import pinn
from lsutils.directions import cosine, norm, pca_directions, random_direction, scaled_like
from lsutils.landscape import evaluate_grid, grid_axes, interpolate, load_landscape, to_vti
from lsutils.models import resnet
from lsutils.objectives import ClassifierObjective, Objective

from test_hessian import Quadratic, spd


def bn_classifier(seed=0):
    torch.manual_seed(seed)
    model = resnet(8, skip=True, dim=1, in_channels=1)
    x, y = torch.randn(48, 1, 40), torch.randint(0, 10, (48,))
    model.train()
    model(x)  # non-trivial running statistics
    return ClassifierObjective(model, x, y, batch_size=16, chunk_size=4)


def test_filter_normalization_follows_li_et_al():
    obj = bn_classifier()
    d = random_direction(obj.params, seed=3)
    for k, p in obj.params.items():
        if p.dim() <= 1:  # biases and BatchNorm scales/shifts
            assert torch.count_nonzero(d[k]) == 0, k
        else:
            torch.testing.assert_close(d[k].reshape(len(p), -1).norm(dim=1), p.reshape(len(p), -1).norm(dim=1))
    assert abs(cosine(d, random_direction(obj.params, seed=4))) < 0.05
    assert torch.equal(d["fc.weight"], random_direction(obj.params, seed=3)["fc.weight"])
    e = scaled_like({k: torch.ones_like(v) for k, v in d.items()}, d)
    assert norm(e) == pytest.approx(norm(d))


def test_grid_matches_the_closed_form_on_a_quadratic():
    A, _ = spd(12, 0)
    b = torch.randn(12, dtype=torch.float64)
    obj = Quadratic(A, b)
    d1, d2 = ({"theta": torch.randn(12, dtype=torch.float64)} for _ in range(2))
    axes = grid_axes(7, [1.0, 0.5], dims=2)
    land = evaluate_grid(obj, [d1, d2], axes, chunk_size=5, progress=False)
    t = obj.params["theta"]
    for i, a1 in enumerate(axes[0]):
        for j, a2 in enumerate(axes[1]):
            p = t + a1 * d1["theta"] + a2 * d2["theta"]
            assert land.loss[i, j] == pytest.approx(float(0.5 * p @ A @ p + b @ p), rel=1e-12)
    assert land.at_origin() == pytest.approx(float(obj()), rel=1e-12)


@pytest.mark.parametrize("chunk", [1, 4])
def test_origin_equals_the_objective_and_metrics_agree(chunk):
    obj = bn_classifier()
    d1, d2 = random_direction(obj.params, 1), random_direction(obj.params, 2)
    land = evaluate_grid(obj, [d1, d2], grid_axes(3, 0.5, 2), chunk_size=chunk, progress=False)
    torch.testing.assert_close(land.at_origin(), float(obj()), rtol=1e-5, atol=0)
    assert land.at_origin("accuracy") == pytest.approx(obj.metrics()["accuracy"])
    if chunk == 4:  # vmapped chunks give the point-by-point values
        ref = evaluate_grid(obj, [d1, d2], grid_axes(3, 0.5, 2), chunk_size=1, progress=False)
        np.testing.assert_allclose(land.loss, ref.loss, rtol=1e-4)
    problem = pinn.ConvectionProblem(2.0)
    pobj = pinn.PinnObjective(pinn.PinnMLP(8, 2), problem, problem.sample(64, 16, 8, seed=0))
    pl = evaluate_grid(pobj, [random_direction(pobj.params, 0)], grid_axes(5, 1.0, 1), progress=False)
    assert pl.at_origin() == pytest.approx(float(pobj()), rel=1e-5)
    assert pl.at_origin("rel_l2") == pytest.approx(pobj.metrics()["rel_l2"], rel=1e-5)


def test_interrupted_grid_resumes_to_the_identical_result(tmp_path):
    obj = bn_classifier()
    ds = [random_direction(obj.params, 1), random_direction(obj.params, 2)]
    axes = grid_axes(5, 1.0, 2)
    whole = evaluate_grid(obj, ds, axes, progress=False)
    path = tmp_path / "plane.npz"
    part = evaluate_grid(obj, ds, axes, path=path, progress=False, max_points=8)  # two blocks of 4
    assert np.isnan(part.loss).sum() == 25 - 8 and not path.exists()
    assert (tmp_path / "plane.partial.npz").exists()
    resumed = evaluate_grid(obj, ds, axes, path=path, progress=False)
    np.testing.assert_array_equal(resumed.loss, whole.loss)
    assert not (tmp_path / "plane.partial.npz").exists()
    loaded = load_landscape(path)
    np.testing.assert_array_equal(loaded.values["accuracy"], whole.values["accuracy"])
    assert loaded.directions == ["direction 0", "direction 1"]


class Cliff(Objective):
    """Finite for theta < 1, infinite at or beyond it, NaN beyond 2."""

    def __init__(self):
        m = nn.Module()
        m.theta = nn.Parameter(torch.zeros((), dtype=torch.float64))
        super().__init__(m)

    def loss(self, params):
        t = params["theta"]
        return torch.where(t < 1, t ** 2, torch.where(t < 2, torch.inf, torch.nan))


def test_non_finite_values_are_kept_as_nan_and_counted():
    obj = Cliff()
    land = evaluate_grid(obj, [{"theta": torch.ones((), dtype=torch.float64)}], [np.linspace(-3, 3, 7)],
                         progress=False)
    assert land.n_nonfinite == 3  # theta = 1, 2, 3
    assert np.isnan(land.loss[-3:]).all() and np.isfinite(land.loss[:-3]).all()


def test_pca_of_a_planar_trajectory():
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    end = torch.randn(50, generator=g, dtype=torch.float64)
    ts = torch.linspace(0, 1, 12, dtype=torch.float64)
    traj = [{"w": end + (1 - t) * 3 * u + torch.sin(4 * t) * v} for t in ts]
    dirs, explained, coords = pca_directions(traj, k=2)
    assert explained.sum() == pytest.approx(1.0, abs=1e-12)
    last = traj[-1]["w"]
    recon = [last + c[0] * dirs[0]["w"] + c[1] * dirs[1]["w"] for c in coords]
    for r, p in zip(recon, traj):
        torch.testing.assert_close(r, p["w"], rtol=0, atol=1e-10)
    assert abs(cosine(dirs[0], dirs[1])) < 1e-12 and coords[-1] == pytest.approx([0, 0], abs=1e-12)


def test_interpolation_endpoints_and_vti_round_trip(tmp_path):
    obj = bn_classifier()
    end = {k: v + 0.1 * torch.randn_like(v) for k, v in obj.params.items()}
    curve = interpolate(obj, obj.params, end, np.linspace(0, 1, 5), progress=False)
    assert curve.loss[0] == pytest.approx(float(obj()), rel=1e-5)
    assert curve.loss[-1] == pytest.approx(float(obj(end)), rel=1e-5)
    A, _ = spd(6, 1)
    q = Quadratic(A, torch.zeros(6, dtype=torch.float64))
    ds = [{"theta": torch.eye(6, dtype=torch.float64)[i]} for i in range(3)]
    block = evaluate_grid(q, ds, grid_axes([4, 3, 2], 1.0, 3), progress=False)
    path = to_vti(block, tmp_path / "block.vti")
    root = ET.parse(path).getroot()
    img = root.find("ImageData")
    assert img.get("WholeExtent") == "0 3 0 2 0 1"
    data = np.array(root.find(".//DataArray[@Name='loss']").text.split(), dtype=float)
    np.testing.assert_allclose(data.reshape(2, 3, 4).transpose(2, 1, 0), block.loss, rtol=1e-15)
    with pytest.raises(ValueError, match="at most 3-D"):
        to_vti(evaluate_grid(q, ds + ds[:1], grid_axes(2, 1.0, 4), progress=False), tmp_path / "x.vti")


def test_a_changed_origin_or_data_recomputes_the_grid(tmp_path):
    obj = bn_classifier()
    ds = [random_direction(obj.params, 1), random_direction(obj.params, 2)]
    axes = grid_axes(5, 1.0, 2)
    path = tmp_path / "plane.npz"
    first = evaluate_grid(obj, ds, axes, path=path, progress=False)
    other = {k: v + 0.05 * torch.randn_like(v) for k, v in obj.params.items()}
    moved = evaluate_grid(obj, ds, axes, origin=other, path=path, progress=False)
    direct = evaluate_grid(obj, ds, axes, origin=other, progress=False)
    np.testing.assert_array_equal(moved.loss, direct.loss)  # recomputed at the new origin
    assert not np.allclose(moved.loss, first.loss)
    # same weights, other data (one label changed): recomputed too
    y = obj.y.clone()
    y[0] = (y[0] + 1) % 10
    relabelled = ClassifierObjective(obj.model, obj.x, y, batch_size=16, chunk_size=4)
    again = evaluate_grid(relabelled, ds, axes, path=path, progress=False)
    np.testing.assert_array_equal(again.loss, evaluate_grid(relabelled, ds, axes, progress=False).loss)
    assert not np.array_equal(again.loss, first.loss)
    # and the same inputs again: loaded, not recomputed
    np.testing.assert_array_equal(evaluate_grid(relabelled, ds, axes, path=path, progress=False,
                                                max_points=0).loss, again.loss)


def test_a_resumed_grid_never_mixes_two_origins(tmp_path):
    obj = bn_classifier()
    ds = [random_direction(obj.params, 1), random_direction(obj.params, 2)]
    axes = grid_axes(5, 1.0, 2)
    path = tmp_path / "plane.npz"
    evaluate_grid(obj, ds, axes, path=path, progress=False, max_points=8)  # interrupted at origin A
    other = {k: v + 0.05 * torch.randn_like(v) for k, v in obj.params.items()}
    resumed = evaluate_grid(obj, ds, axes, origin=other, path=path, progress=False)
    np.testing.assert_array_equal(resumed.loss, evaluate_grid(obj, ds, axes, origin=other, progress=False).loss)


def test_non_finite_axes_origin_or_directions_are_refused():
    obj = bn_classifier()
    ds = [random_direction(obj.params, 1), random_direction(obj.params, 2)]
    with pytest.raises(ValueError, match=r"axes\[1\] holds NaN"):
        evaluate_grid(obj, ds, [np.linspace(-1, 1, 3), np.array([0.0, np.nan, 1.0])], progress=False)
    bad = {k: v.clone() for k, v in ds[0].items()}
    name = next(iter(bad))
    bad[name].view(-1)[0] = float("inf")
    with pytest.raises(ValueError, match=rf"directions\[0\] has NaN or infinite entries in '{name}'"):
        evaluate_grid(obj, [bad, ds[1]], grid_axes(3, 1.0, 2), progress=False)


def test_hessian_planes_stay_in_the_random_planes_loss_range():
    """Unit eigenvectors on the length eigen_length finds: the Hessian plane's largest loss is
    within 1.5x of the random plane's (the compass points are matched to 5%); a step as long as a
    filter-normalized direction along the same eigenvectors (the old scaling) runs far above it."""
    from lsutils.directions import eigen_plane, scaled_like
    from lsutils.hessian import HessianOperator, top_eigenpairs
    from lsutils.landscape import eigen_length

    obj = bn_classifier()
    obj.chunk_size = 1
    eig = top_eigenpairs(HessianOperator(obj), k=2, tol=1e-3, max_steps=40)
    assert eig.values[0] > 0
    axes = grid_axes(7, 1.0, 2)
    r = [random_direction(obj.params, 1), random_direction(obj.params, 2)]
    random_plane = evaluate_grid(obj, r, axes, progress=False, metrics=False)
    top = float(np.nanmax(random_plane.loss))
    rise = top - random_plane.at_origin()
    c = eigen_length(obj, eig.vectors, rise, 1.0, top_eigenvalue=eig.values[0])
    plane = evaluate_grid(obj, eigen_plane(eig.vectors, c), axes, progress=False, metrics=False)
    assert np.isfinite(plane.loss).all()
    assert top / 1.5 <= float(plane.loss.max()) <= 1.5 * top
    assert plane.at_origin() == pytest.approx(random_plane.at_origin())
    old = evaluate_grid(obj, [scaled_like(v, r[0]) for v in eig.vectors], axes, progress=False, metrics=False)
    assert float(np.nanmax(old.loss)) > 10 * top
    with pytest.raises(ValueError, match="rise = -1"):
        eigen_length(obj, eig.vectors, -1.0)
