"""One config layer: settings declared once, profile sections built on the library configs,
overrides, and a notebook's own parameters."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lsutils.catalog import Catalog
from lsutils.config import (NOTEBOOK_SCHEMAS, OVERRIDES_ENV, ProfileError, load_profile, parse_overrides,
                            section_from)
from lsutils.curvature import CurvatureConfig
from lsutils.pinn import PinnTrainConfig
from lsutils.settings import SettingError
from lsutils.train import TrainConfig
from lsutils.trajectories import JumpConfig

LIBRARY = {"01_train_resnets": TrainConfig, "02_train_pinns": PinnTrainConfig, "03_hessian": CurvatureConfig}


@pytest.mark.parametrize("stem", list(LIBRARY))
def test_a_section_takes_the_library_settings_over(stem):
    """Every key a profile section shares with its library config has the library's default and
    range (declared once), and the section turns into exactly that config."""
    lib = {f.name: f for f in dataclasses.fields(LIBRARY[stem])}
    shared = [f for f in dataclasses.fields(NOTEBOOK_SCHEMAS[stem]) if f.name in lib]
    assert len(shared) >= 7
    for f in shared:
        assert dict(f.metadata) == dict(lib[f.name].metadata), f.name
    section = load_profile("quick").section(stem)
    made = section.train_config() if stem != "03_hessian" else section.curvature_config(seed=5)
    assert isinstance(made, LIBRARY[stem])
    assert all(getattr(made, f.name) == getattr(section, f.name) for f in shared)


def test_one_message_for_a_bad_value_wherever_it_comes_from():
    with pytest.raises(SettingError, match=r"^epochs = 0 is out of range; allowed: \[1, inf\]$"):
        TrainConfig(epochs=0)
    bad = r"notebooks\.01_train_resnets\.epochs = 0 is out of range; allowed: \[1, inf\]"
    with pytest.raises(ProfileError, match=bad):
        load_profile("smoke", overrides={"notebooks.01_train_resnets.epochs": 0})
    with pytest.raises(SettingError, match=r"momentum = 1\.5 is out of range; allowed: \[0\.0, 0\.999\]"):
        JumpConfig(momentum=1.5)
    with pytest.raises(SettingError, match="schedule = 'linear'; allowed: cosine, step, constant"):
        TrainConfig(schedule="linear")


def test_jump_and_poor_configs_follow_the_wells_recipe():
    p = load_profile("quick")
    well = p.section("01_train_resnets").train_config()
    jumps = p.section("06_jump_and_retrain").jump_config(well)
    assert (jumps.momentum, jumps.weight_decay, jumps.batch_size, jumps.augment) == (
        well.momentum, well.weight_decay, well.batch_size, well.augment)
    assert jumps.steps == (0.25, 0.5, 0.75, 1.0) and jumps.lr == 0.01 and jumps.epochs == 4
    poor = p.section("06_jump_and_retrain").poor_config(well)
    assert (poor.epochs, poor.weight_decay, poor.augment, poor.lr) == (30, 0.0, False, well.lr)


def test_overrides_scale_a_profile_without_copying_it(monkeypatch):
    assert parse_overrides(["notebooks.01_train_resnets.seeds=[0, 1]", "seed=3"]) == {
        "notebooks.01_train_resnets.seeds": [0, 1], "seed": 3}
    with pytest.raises(ProfileError, match="KEY=VALUE"):
        parse_overrides(["epochs"])
    p = load_profile("full", overrides={"notebooks.01_train_resnets.epochs": 2})
    assert p.section("01_train_resnets").epochs == 2 and p.section("01_train_resnets").dataset == "cifar10"
    with pytest.raises(ProfileError, match="unknown key 'epoch'"):
        load_profile("full", overrides={"notebooks.01_train_resnets.epoch": 2})
    with pytest.raises(ProfileError, match="no section 'nope'"):
        load_profile("full", overrides={"notebooks.nope.epochs": 2})
    monkeypatch.setenv(OVERRIDES_ENV, json.dumps({"notebooks.03_hessian.top_k": 4}))
    assert load_profile("smoke").section("03_hessian").top_k == 4  # what the pipeline hands its notebooks
    assert load_profile("smoke", overrides={"notebooks.03_hessian.top_k": 5}).section("03_hessian").top_k == 5
    monkeypatch.setenv(OVERRIDES_ENV, "[1]")
    with pytest.raises(ProfileError, match="JSON object"):
        load_profile("smoke")


def test_a_notebooks_own_parameters_take_effect_and_are_validated():
    params = {**load_profile("smoke").notebook_params("03_hessian"), "top_k": 2, "save_vectors": 2, "seed": 7}
    cat = Catalog("smoke", "cpu", notebook="03_hessian", parameters=params)
    assert cat.section("03_hessian").top_k == 2 and cat.seed == 7
    assert cat.section("01_train_resnets") == load_profile("smoke").section("01_train_resnets")
    with pytest.raises(ProfileError, match=r"03_hessian\.top_k = 0 is out of range"):
        Catalog("smoke", "cpu", notebook="03_hessian", parameters={**params, "top_k": 0})
    with pytest.raises(ProfileError, match="missing key 'trace_probes'"):
        section_from("03_hessian", {k: v for k, v in params.items() if k != "trace_probes"})
    with pytest.raises(ProfileError, match="parameters given without notebook"):
        Catalog("smoke", "cpu", parameters=params)
