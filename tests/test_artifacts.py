"""Artifacts: atomic writes, sidecars, and errors that say what to run."""

from __future__ import annotations

import os

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

    def die(src, dst):
        raise Boom()

    monkeypatch.setattr(os, "replace", die)  # the data are written, but never land
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
    real = os.replace
    calls = []

    def replace(src, dst):  # the first rename lands the data, the second would land the sidecar
        calls.append(dst)
        if len(calls) == 2:
            raise Boom()
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(Boom):
        artifacts.save_json(path, {"v": 2})
    assert not artifacts.exists(path)  # new data without its sidecar never looks finished
    assert sorted(p.name for p in d.iterdir()) == ["r.json"]


def test_a_flipped_bit_or_an_edited_digit_is_refused(data_root):
    d = artifacts.stage_dir("smoke", "resnets")
    pt = artifacts.save_torch(d / "epoch_001.pt", {"state": {"w": torch.linspace(-1, 1, 64)}})
    raw = bytearray(pt.read_bytes())
    # flip one bit inside the tensor's storage (the float 1.0 at the end: exponent bit)
    at = raw.rfind(np.float32(1.0).tobytes())
    raw[at + 3] ^= 0x40
    pt.write_bytes(bytes(raw))
    with pytest.raises(artifacts.ArtifactCorruptError, match="SHA-256 does not match"):
        artifacts.load_torch(pt)
    js = artifacts.save_json(d / "final.json", {"test_acc": 0.9123})
    js.write_text(js.read_text().replace("0.9123", "0.9923"))
    with pytest.raises(artifacts.ArtifactCorruptError, match="delete it and rerun"):
        artifacts.load_json(js)
    npz = artifacts.save_npz(d / "g.npz", {"v": np.arange(5.0)})
    raw = bytearray(npz.read_bytes())
    raw[-30] ^= 1
    npz.write_bytes(bytes(raw))
    with pytest.raises(artifacts.ArtifactCorruptError):
        artifacts.load_npz(npz)


def test_same_content_is_not_rewritten_so_read_only_folders_work(data_root):
    d = artifacts.stage_dir("smoke", "pinns")
    paths = [artifacts.save_json(d / "index.json", [{"beta": 1.0}], params={"b": [1]}, seed=0),
             artifacts.save_npz(d / "g.npz", {"v": np.arange(3.0)}),
             artifacts.save_torch(d / "w.pt", {"w": torch.ones(2)})]
    before = {p: (p.stat().st_mtime_ns, artifacts.sidecar_path(p).read_text()) for p in paths}
    d.chmod(0o555)
    try:
        artifacts.save_json(d / "index.json", [{"beta": 1.0}], params={"b": (1,)}, seed=0)
        artifacts.save_npz(d / "g.npz", {"v": np.arange(3.0)})
        artifacts.save_torch(d / "w.pt", {"w": torch.ones(2)})
        if os.geteuid() != 0:  # root writes anyway: the read-only check means something only for users
            with pytest.raises(PermissionError):
                artifacts.save_json(d / "index.json", [{"beta": 2.0}])
    finally:
        d.chmod(0o755)
    assert before == {p: (p.stat().st_mtime_ns, artifacts.sidecar_path(p).read_text()) for p in paths}
    artifacts.save_json(d / "index.json", [{"beta": 2.0}], params={"b": [1]}, seed=0)
    assert artifacts.load_json(d / "index.json") == [{"beta": 2.0}]


def _save_many(root: str, worker: int, n: int) -> int:
    import os as _os
    _os.environ["LSUTILS_DATA"] = root
    from lsutils import artifacts as a
    from lsutils.pipeline import sweep_partial_files
    d = a.stage_dir("smoke", "pinns")
    for i in range(n):
        a.save_torch(d / f"same_{i % 4}.pt", {"w": torch.arange(200_000.0) * (i % 4)},
                     params={"i": i, "worker": worker})  # a new key: every save writes
        sweep_partial_files(d.parent)  # what a pipeline does after each notebook
    return n


def test_two_processes_share_a_data_folder(data_root):
    import multiprocessing as mp
    with mp.get_context("spawn").Pool(2) as pool:
        left = pool.starmap(_save_many, [(str(data_root), w, 40) for w in range(2)])
    assert left == [40, 40]  # every save of both completed
    d = artifacts.stage_dir("smoke", "pinns")
    for i in range(4):
        assert torch.equal(artifacts.load_torch(d / f"same_{i}.pt")["w"], torch.arange(200_000.0) * i)
    assert not list(d.rglob(".*.tmp"))


def test_stale_temp_files_are_those_of_dead_processes(data_root, tmp_path):
    d = artifacts.stage_dir("smoke", "pinns", create=True)
    mine = d / f".x.pt.{os.getpid()}.abc.tmp"
    dead = d / ".x.pt.999999999.abc.tmp"
    old = d / ".x.pt.legacy.tmp"
    for p in (mine, dead, old):
        p.write_bytes(b"1")
    os.utime(old, (0, 0))
    assert sorted(artifacts.stale_temp_files(d)) == sorted([dead, old])


def test_digest_covers_values_shapes_and_dtypes():
    a = {"w": torch.zeros(2, 3), "b": [1, 2.0]}
    assert artifacts.digest(a) == artifacts.digest({"b": [1, 2.0], "w": torch.zeros(2, 3)})
    assert artifacts.digest(a) != artifacts.digest({"w": torch.zeros(3, 2), "b": [1, 2.0]})
    assert artifacts.digest(a) != artifacts.digest({"w": torch.zeros(2, 3, dtype=torch.float64), "b": [1, 2.0]})
    w = torch.zeros(2, 3)
    w[1, 2] = 1e-38
    assert artifacts.digest(a) != artifacts.digest({"w": w, "b": [1, 2.0]})


def test_unknown_stage_lists_the_stages():
    with pytest.raises(ValueError, match="stage = 'nope'; allowed: resnets, pinns"):
        artifacts.stage_dir("smoke", "nope")


def test_remove(data_root):
    path = artifacts.save_json(artifacts.stage_dir("smoke", "topology") / "z.json", [1])
    artifacts.remove(path)
    assert not path.exists() and not artifacts.sidecar_path(path).exists()
