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


def _smoke() -> dict:
    return yaml.safe_load((repo_root() / "notebooks" / "profiles" / "smoke.yaml").read_text())


def _merge(base: dict, body: dict) -> dict:
    out = dict(base)
    for k, v in body.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def _write(tmp_path, body: dict, name="bad"):
    """The smoke profile with ``body`` merged in (a complete profile with one change)."""
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(_merge(_smoke(), body)))
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
    ({"executor": "local:0"}, "executor = 'local:0'; allowed: serial, local:N (N >= 1), tcp://host:port"),
    ({"executor": "dask"}, "executor = 'dask'; allowed: serial, local:N"),
    ({"notebooks": {"08_taxonomy": {"seeds": [3]}}}, "seeds = [3]; allowed: at least two different seeds"),
    ({"notebooks": {"08_taxonomy": {"noise_batch": 100}}}, "noise_batch = 100; allowed: one of batch_sizes"),
])
def test_bad_values_name_the_key(tmp_path, body, needle):
    with pytest.raises(ProfileError) as err:
        load_profile("bad", _write(tmp_path, body))
    assert needle in str(err.value)


def _one_line_naming(err, path, needle):
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and needle in msg and "\n" not in msg, msg


@pytest.mark.parametrize("body, needle", [
    ({"notebooks": {"01_train_resnets": {"lr": float("nan")}}}, "01_train_resnets.lr = nan is not finite"),
    ({"notebooks": {"04_landscapes": {"span": float("inf")}}}, "04_landscapes.span = inf is not finite"),
    ({"notebooks": {"02_train_pinns": {"adam_lr": float("inf")}}}, "adam_lr = inf is not finite"),
    ({"notebooks": {"04_landscapes": {"resolution_2d": 1000000}}},
     "04_landscapes.resolution_2d = 1000000 needs about 58.2 TB, over the memory budget of 16 GB"),
    ({"notebooks": {"01_train_resnets": {"num_samples": 10 ** 12}}},
     "01_train_resnets.num_samples = 1000000000000 needs"),
    ({"notebooks": {"06_jump_and_retrain": {"knn": 10 ** 6}}}, "knn = 1000000; allowed: at most 5"),
    ({"notebooks": {"05_topology": None}}, "notebooks.05_topology: expected a mapping of keys, got None"),
    ({"notebooks": None}, "notebooks: expected a mapping of notebook names"),
    ({"memory_budget_gb": 0}, "memory_budget_gb = 0.0 is out of range"),
])
def test_bad_profiles_are_refused_in_one_line_naming_file_and_key(tmp_path, body, needle):
    path = _write(tmp_path, body)
    with pytest.raises(ProfileError) as err:
        load_profile("bad", path)
    _one_line_naming(err, path, needle)


def test_missing_sections_and_keys_are_errors(tmp_path):
    body = _smoke()
    del body["notebooks"]["03_hessian"]
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(body))
    with pytest.raises(ProfileError) as err:
        load_profile("a", tmp_path / "a.yaml")
    _one_line_naming(err, tmp_path / "a.yaml", "notebooks.03_hessian: missing section")
    body = _smoke()
    del body["notebooks"]["01_train_resnets"]["epochs"]
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(body))
    with pytest.raises(ProfileError) as err:
        load_profile("b", tmp_path / "b.yaml")
    _one_line_naming(err, tmp_path / "b.yaml", "notebooks.01_train_resnets: missing key 'epochs'")


def test_duplicate_keys_exponents_and_encodings(tmp_path):
    text = (repo_root() / "notebooks" / "profiles" / "smoke.yaml").read_text()
    dup = tmp_path / "dup.yaml"
    dup.write_text(text.replace("    epochs: 2\n", "    epochs: 2\n    epochs: 30\n", 1))
    with pytest.raises(ProfileError) as err:
        load_profile("dup", dup)
    _one_line_naming(err, dup, "duplicate key 'epochs'")
    exp = tmp_path / "exp.yaml"  # YAML 1.1 reads 1.0e6 as a string; a profile reads it as a number
    exp.write_text(text.replace("num_samples: 1000", "num_samples: 1.0e3").replace("lr: 0.1", "lr: 1e-1"))
    p = load_profile("exp", exp)
    assert p.notebook_params("01_train_resnets")["num_samples"] == 1000
    assert p.notebook_params("01_train_resnets")["lr"] == 0.1
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(text.replace("# smoke", "# caf\u00e9 smoke").encode("latin-1"))
    with pytest.raises(ProfileError) as err:
        load_profile("latin", latin)
    _one_line_naming(err, latin, "not UTF-8 text")


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
