"""Profiles: the shipped ones load, and every kind of bad input names its key."""

from __future__ import annotations

import ast
import json

import pytest
import yaml

from lsutils.config import NOTEBOOK_SCHEMAS, PROFILE_NAMES, ProfileError, load_profile, repo_root


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_shipped_profiles_load(name):
    p = load_profile(name)
    assert p.name == name
    assert p.gpu_sized == (name == "full")
    params = p.notebook_params("02_train_pinns")
    assert params["profile"] == name and params["betas"]


def test_quick_profile_sweeps_the_published_betas():
    assert load_profile("quick").notebook_params("02_train_pinns")["betas"] == [1, 5, 10, 20, 30, 40, 50]


def _write(tmp_path, body: dict, name="bad"):
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(body))
    return tmp_path / f"{name}.yaml"


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ProfileError, match=r"unknown profile 'nosuch'; allowed: full, quick, smoke"):
        load_profile("nosuch")


def test_negative_beta_names_key_and_range(tmp_path):
    path = _write(tmp_path, {"notebooks": {"02_train_pinns": {"betas": [1.0, -1.0]}}})
    with pytest.raises(ProfileError) as err:
        load_profile("bad", path)
    msg = str(err.value)
    assert "notebooks.02_train_pinns.betas[1]" in msg and "-1.0" in msg and "(0.0, inf]" in msg


@pytest.mark.parametrize("body, needle", [
    ({"nosuchkey": 1}, "unknown key 'nosuchkey'; allowed keys: seed, device"),
    ({"notebooks": {"02_train_pinns": {"epochs": 3}}}, "unknown key 'epochs'; allowed keys: betas"),
    ({"notebooks": {"99_nothing": {}}}, "unknown notebook '99_nothing'; allowed: 01_train_resnets, 02_train_pinns"),
    ({"device": "tpu"}, "device = 'tpu'; allowed: auto, cpu, cuda, mps"),
    ({"seed": -3}, "seed = -3 is out of range"),
    ({"notebooks": {"02_train_pinns": {"adam_steps": 2.5}}}, "adam_steps: expected an integer"),
    ({"notebooks": {"02_train_pinns": {"seeds": []}}}, "seeds: expected a non-empty list"),
    ({"notebooks": {"02_train_pinns": {"adam_lr": 0}}}, "adam_lr = 0.0 is out of range"),
    ({"notebooks": {"02_train_pinns": {"betas": [1.0, 5.0], "high_beta": 30.0}}},
     "high_beta = 30.0 must be one of betas"),
    ({"notebooks": {"01_train_resnets": {"dataset": "imagenet"}}},
     "01_train_resnets.dataset = 'imagenet'; allowed: mnist1d, cifar10"),
    ({"notebooks": {"01_train_resnets": {"depth": 21}}}, "depth = 21; allowed: 6n + 2"),
    ({"notebooks": {"01_train_resnets": {"augment": "yes"}}}, "augment: expected true or false"),
])
def test_bad_values_name_the_key(tmp_path, body, needle):
    with pytest.raises(ProfileError) as err:
        load_profile("bad", _write(tmp_path, body))
    assert needle in str(err.value)


def test_invalid_yaml_is_a_profile_error(tmp_path):
    (tmp_path / "bad.yaml").write_text("notebooks: [unclosed\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile("bad", tmp_path / "bad.yaml")


def _parameters_cell(stem: str) -> dict:
    nb = json.loads((repo_root() / "notebooks" / f"{stem}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)}


@pytest.mark.parametrize("stem", sorted(NOTEBOOK_SCHEMAS))
def test_notebook_defaults_are_the_quick_profile(stem):
    """Run by hand (or on Colab), a notebook behaves as in `make book`."""
    assert _parameters_cell(stem) == load_profile("quick").notebook_params(stem)
