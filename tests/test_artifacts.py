"""Artifacts: atomic writes, sidecars, and errors that say what to run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lsutils import artifacts


def test_roundtrips_with_sidecar(data_root):
    d = artifacts.stage_dir("smoke", "pinns")
    assert d == data_root / "runs" / "smoke" / "pinns"
    t = artifacts.save_torch(d / "a.pt", {"w": torch.arange(4.0)}, params={"beta": 1.0},
                             seed=7, profile="smoke")
    assert torch.equal(artifacts.load_torch(t)["w"], torch.arange(4.0))
    meta = artifacts.read_meta(t)
    assert meta["params"] == {"beta": 1.0} and meta["seed"] == 7 and meta["profile"] == "smoke"
    assert meta["environment"]["torch"] == torch.__version__ and "commit" in meta["environment"]
    j = artifacts.save_json(d / "b.json", {"x": np.float32(0.5), "y": [1, 2]})
    assert artifacts.load_json(j) == {"x": 0.5, "y": [1, 2]}
    n = artifacts.save_npz(d / "c.npz", {"grid": np.eye(3)})
    np.testing.assert_array_equal(artifacts.load_npz(n)["grid"], np.eye(3))


def test_missing_artifact_names_its_notebook(data_root):
    path = artifacts.stage_dir("quick", "pinns") / "beta1_seed0.pt"
    with pytest.raises(artifacts.ArtifactMissingError) as err:
        artifacts.load_torch(path)
    assert "notebooks/02_train_pinns.ipynb" in str(err.value)
    assert "python -m lsutils run --profile quick --only 02" in str(err.value)
    hess = artifacts.stage_dir("quick", "hessian") / "eig.pt"
    with pytest.raises(FileNotFoundError, match="03_hessian"):
        artifacts.load_torch(hess)


def test_data_without_sidecar_counts_as_missing(data_root):
    path = artifacts.stage_dir("smoke", "pinns", create=True) / "half.pt"
    torch.save({"w": 1}, path)  # e.g. killed between the two renames
    assert not artifacts.exists(path)
    with pytest.raises(artifacts.ArtifactMissingError):
        artifacts.load_torch(path)


def test_corrupt_files_raise_a_clear_error(data_root):
    d = artifacts.stage_dir("smoke", "pinns")
    for save, load, name in ((artifacts.save_torch, artifacts.load_torch, "x.pt"),
                             (artifacts.save_json, artifacts.load_json, "x.json"),
                             (artifacts.save_npz, artifacts.load_npz, "x.npz")):
        payload = {"a": np.ones(3)} if name.endswith("npz") else {"a": 1}
        path = save(d / name, payload)
        path.write_bytes(b"\x00garbage" * 10)
        with pytest.raises(artifacts.ArtifactCorruptError, match="corrupt artifact"):
            load(path)
    artifacts.sidecar_path(d / "x.pt").write_text("{not json")
    with pytest.raises(artifacts.ArtifactCorruptError, match="corrupt sidecar"):
        artifacts.read_meta(d / "x.pt")


class Boom(Exception):
    pass


def test_interrupted_write_leaves_nothing(data_root, monkeypatch):
    d = artifacts.stage_dir("smoke", "pinns")
    path = d / "big.pt"

    def half_then_die(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise Boom()

    monkeypatch.setattr(torch, "save", half_then_die)
    with pytest.raises(Boom):
        artifacts.save_torch(path, {"w": 1})
    assert list(d.iterdir()) == []  # no target, no sidecar, no temporary file


def test_interrupted_overwrite_keeps_the_old_artifact(data_root, monkeypatch):
    d = artifacts.stage_dir("smoke", "pinns")
    path = artifacts.save_torch(d / "r.pt", {"v": 1})

    def die(obj, f, *a, **k):
        raise Boom()

    monkeypatch.setattr(torch, "save", die)
    with pytest.raises(Boom):
        artifacts.save_torch(path, {"v": 2})
    assert artifacts.load_torch(path) == {"v": 1}
    assert sorted(p.name for p in d.iterdir()) == ["r.pt", "r.pt.meta.json"]


def test_killed_between_data_and_sidecar_counts_as_missing(data_root, monkeypatch):
    d = artifacts.stage_dir("smoke", "pinns")
    path = artifacts.save_json(d / "r.json", {"v": 1})
    real = json.dumps
    calls = []

    def dumps(obj, *a, **k):  # the first call serialises the data, the second the sidecar
        calls.append(1)
        if len(calls) == 2:
            raise Boom()
        return real(obj, *a, **k)

    monkeypatch.setattr(json, "dumps", dumps)
    with pytest.raises(Boom):
        artifacts.save_json(path, {"v": 2})
    assert not artifacts.exists(path)  # new data without its sidecar never looks finished
    assert sorted(p.name for p in d.iterdir()) == ["r.json"]


def test_unknown_stage_lists_the_stages():
    with pytest.raises(ValueError, match="stage = 'nope'; allowed: resnets, pinns"):
        artifacts.stage_dir("smoke", "nope")


def test_remove(data_root):
    path = artifacts.save_json(artifacts.stage_dir("smoke", "global") / "z.json", [1])
    artifacts.remove(path)
    assert not path.exists() and not artifacts.sidecar_path(path).exists()
