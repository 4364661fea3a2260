"""The convection PINN against exact answers (Krishnapriyan et al. 2021 set-up)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lsutils import artifacts, pinn
from lsutils.objectives import stack_params


class ExactSolution(nn.Module):
    """u(x, t) = sin(x - beta t) written as a module with one (unused) parameter."""

    def __init__(self, beta: float) -> None:
        super().__init__()
        self.beta = beta
        self.scale = nn.Parameter(torch.ones((), dtype=torch.float64))

    def forward(self, xt):
        return self.scale * torch.sin(xt[:, 0] - self.beta * xt[:, 1])


@pytest.mark.parametrize("beta", [0.0, 1.0, 30.0])
def test_exact_solution_has_zero_residual_under_autograd(beta):
    problem = pinn.ConvectionProblem(beta)
    pts = problem.sample(500, 64, 32, seed=0, dtype=torch.float64)
    xt = pts.interior.clone().requires_grad_(True)
    u = problem.exact(xt[:, 0], xt[:, 1])
    (du,) = torch.autograd.grad(u.sum(), xt)
    residual = du[:, 1] + beta * du[:, 0]
    assert residual.abs().max() < 1e-12
    # the objective's forward-mode residual and the two condition terms agree
    obj = pinn.PinnObjective(ExactSolution(beta), problem, pts)
    terms = obj.terms(obj.params)
    assert all(float(v) < 1e-24 for v in terms.values()), terms
    assert obj.metrics()["rel_l2"] < 1e-14


def test_forward_mode_residual_matches_autograd_on_a_network():
    torch.manual_seed(0)
    beta = 7.0
    model = pinn.PinnMLP(16, 2).double()
    problem = pinn.ConvectionProblem(beta)
    pts = problem.sample(300, 8, 8, seed=1, dtype=torch.float64)
    obj = pinn.PinnObjective(model, problem, pts)
    xt = pts.interior.clone().requires_grad_(True)
    (du,) = torch.autograd.grad(model(xt).sum(), xt)
    expected = (du[:, 1] + beta * du[:, 0]).pow(2).mean()
    torch.testing.assert_close(obj.terms(obj.params)["residual"], expected, rtol=1e-12, atol=0)


def test_relative_error_exact_and_shifted():
    problem = pinn.ConvectionProblem(5.0)
    exact = problem.exact_field(dtype=torch.float64)
    assert float(pinn.relative_l2_error(exact, exact)) == 0.0
    _, _, grid = problem.grid(dtype=torch.float64)
    for delta in (0.1, 1.0, math.pi):
        shifted = torch.sin(grid[:, 0] - 5.0 * grid[:, 1] + delta).reshape(problem.nt, problem.nx)
        # over whole periods in x: ||sin(a + d) - sin a|| / ||sin a|| = 2 |sin(d / 2)|
        assert float(pinn.relative_l2_error(shifted, exact)) == pytest.approx(
            2 * abs(math.sin(delta / 2)), rel=1e-12)
    with pytest.raises(ValueError, match="shape"):
        pinn.relative_l2_error(exact[:, :3], exact)


def test_problem_and_config_validation():
    with pytest.raises(ValueError, match=r"beta = -1; allowed: a finite number >= 0"):
        pinn.ConvectionProblem(-1)
    with pytest.raises(ValueError, match="n_collocation = 0"):
        pinn.ConvectionProblem(1.0).sample(0, 1, 1, seed=0)
    with pytest.raises(ValueError, match="width = 0"):
        pinn.PinnTrainConfig(width=0)
    with pytest.raises(ValueError, match="adam_lr"):
        pinn.PinnTrainConfig(adam_lr=-1.0)


def test_grid_and_sampling_follow_the_paper():
    problem = pinn.ConvectionProblem(1.0)
    x, t, grid = problem.grid(dtype=torch.float64)
    assert x.shape == (256,) and t.shape == (100,) and grid.shape == (25600, 2)
    assert float(x[0]) == 0.0 and float(x[-1]) < 2 * math.pi and float(t[-1]) == 1.0
    pts = problem.sample(100, 16, 8, seed=3, dtype=torch.float64)
    assert torch.equal(pts.interior, problem.sample(100, 16, 8, seed=3, dtype=torch.float64).interior)
    assert (pts.interior[:, 0] >= 0).all() and (pts.interior[:, 0] < 2 * math.pi).all()
    torch.testing.assert_close(pts.initial_values, torch.sin(pts.initial[:, 0]))
    assert (pts.boundary_right[:, 0] == 2 * math.pi).all() and (pts.boundary_left[:, 0] == 0).all()


def test_batched_objective_equals_pointwise():
    torch.manual_seed(0)
    problem = pinn.ConvectionProblem(10.0)
    obj = pinn.PinnObjective(pinn.PinnMLP(8, 2).double(), problem,
                             problem.sample(64, 16, 8, seed=0, dtype=torch.float64))
    points = [{k: v + 0.05 * i * torch.randn_like(v) for k, v in obj.params.items()} for i in range(5)]
    batched = obj.batched(stack_params(points), chunk_size=2)
    torch.testing.assert_close(batched, torch.stack([obj(p) for p in points]), rtol=1e-12, atol=0)


TINY = pinn.PinnTrainConfig(width=20, depth=2, n_collocation=256, n_initial=64, n_boundary=32,
                            adam_steps=300, adam_lr=0.01, lbfgs_steps=150)


def test_training_solves_small_beta_and_is_deterministic():
    a = pinn.train_pinn(1.0, 0, TINY, progress=False)
    assert a.rel_l2 < 0.05, a.metrics  # a real solution, not a stand-in
    assert a.history["phase"][0] == "adam" and a.history["phase"][-1] == "lbfgs"
    b = pinn.train_pinn(1.0, 0, TINY, progress=False)
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)


def test_train_or_load_reuses_a_finished_run(data_root):
    cfg = pinn.PinnTrainConfig(width=8, depth=1, n_collocation=32, n_initial=8, n_boundary=4,
                               adam_steps=5, lbfgs_steps=2)
    run = pinn.train_or_load(2.0, 1, cfg, profile="smoke", progress=False)
    assert not run.loaded
    path = pinn.run_path("smoke", 2.0, 1)
    assert path == data_root / "runs" / "smoke" / "pinns" / "beta2_seed1.pt"
    assert artifacts.read_meta(path)["params"]["config"]["adam_steps"] == 5
    again = pinn.train_or_load(2.0, 1, cfg, profile="smoke", progress=False)
    assert again.loaded and again.metrics == run.metrics
    assert all(torch.equal(again.state[k], run.state[k]) for k in run.state)
    # the loaded run rebuilds the same objective value
    assert float(again.objective()()) == pytest.approx(run.metrics["loss"], rel=1e-6)
    # a different configuration is retrained, not silently reused
    other = pinn.PinnTrainConfig(**{**cfg.__dict__, "adam_steps": 6})
    assert not pinn.train_or_load(2.0, 1, other, profile="smoke", progress=False).loaded


def test_load_run_missing_names_the_notebook():
    with pytest.raises(artifacts.ArtifactMissingError, match="02_train_pinns"):
        pinn.load_run("quick", 1.0, 0)


def test_hand_carried_tangent_equals_jvp_and_autograd():
    from torch.func import jvp
    torch.manual_seed(1)
    model = pinn.PinnMLP(12, 3).double()
    xt = torch.rand(40, 2, dtype=torch.float64)
    tangent = torch.tensor([7.0, 1.0], dtype=torch.float64).expand_as(xt)
    u, du = model(xt, tangent)
    u_ref, du_ref = jvp(model, (xt,), (tangent,))
    torch.testing.assert_close(u, u_ref, rtol=1e-14, atol=0)
    torch.testing.assert_close(du, du_ref, rtol=1e-12, atol=1e-14)


def test_sigmoid_form_forward_is_the_tanh_network():
    torch.manual_seed(0)
    model = pinn.PinnMLP(20, 3).double()
    xt = torch.rand(300, 2, dtype=torch.float64) * 6
    torch.testing.assert_close(model(xt), model.net(xt).squeeze(-1), rtol=0, atol=1e-13)
    x32 = xt.float()
    assert (model.float()(x32) - model.net(x32).squeeze(-1)).abs().max() < 1e-5
    assert any(isinstance(m, nn.Tanh) for m in model.net)  # the architecture as written


def test_cpu_allocator_tuning_applies_once_and_can_be_refused(monkeypatch):
    import sys

    from lsutils.repro import tune_cpu_allocator

    monkeypatch.setenv("LSUTILS_KEEP_MALLOC", "1")
    assert tune_cpu_allocator.__wrapped__() is False
    monkeypatch.delenv("LSUTILS_KEEP_MALLOC")
    applied = tune_cpu_allocator.__wrapped__()
    assert applied is sys.platform.startswith("linux")


def test_a_diverging_pinn_is_refused_and_not_saved(data_root, monkeypatch):
    from lsutils.train import TrainingDiverged

    cfg = pinn.PinnTrainConfig(width=8, depth=1, n_collocation=32, n_initial=8, n_boundary=4,
                               adam_steps=10, lbfgs_steps=2)
    real = pinn.PinnObjective.terms
    calls = []

    def blow_up(self, params):  # the loss turns NaN at the fourth Adam step
        calls.append(1)
        out = real(self, params)
        return {**out, "residual": out["residual"] * float("nan")} if len(calls) == 4 else out

    monkeypatch.setattr(pinn.PinnObjective, "terms", blow_up)
    with pytest.raises(TrainingDiverged, match=r"run PINN beta=2 seed=1 diverged at Adam step 3: the loss is nan"):
        pinn.train_or_load(2.0, 1, cfg, profile="smoke", progress=False)
    assert not artifacts.exists(pinn.run_path("smoke", 2.0, 1))
    with pytest.raises(ValueError, match="adam_lr = inf is not finite; allowed: a finite number"):
        pinn.PinnTrainConfig(adam_lr=float("inf"))
