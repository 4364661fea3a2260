"""The pipeline: selection, clear failures, nothing half-written, and the smoke chain."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
import torch

from lsutils import pipeline
from lsutils.config import repo_root

ROOT = repo_root()


def _cli(*args, env_extra=None, cwd=ROOT, **kw):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "lsutils", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, **kw)


def test_select_notebooks():
    nbs = [Path(f"{s}.ipynb") for s in ("01_a", "02_b", "03_c")]
    assert pipeline.select_notebooks(nbs, only=["2"]) == [nbs[1]]
    assert pipeline.select_notebooks(nbs, only=["03_c", "01"]) == [nbs[0], nbs[2]]
    assert pipeline.select_notebooks(nbs, start="02") == nbs[1:]
    with pytest.raises(ValueError, match=r"--only '9' matches no notebook; allowed: 01_a, 02_b, 03_c"):
        pipeline.select_notebooks(nbs, only=["9"])
    with pytest.raises(ValueError, match="--from"):
        pipeline.select_notebooks(nbs, start="x")


def test_unknown_profile_fails_fast(data_root):
    proc = _cli("run", "--profile", "nosuch")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown profile 'nosuch'; allowed: full, quick, smoke"
    assert not data_root.exists()


@pytest.mark.parametrize("edit, needle", [
    ("betas: [1.0, 30.0]", "betas[0] = -1.0 is out of range"),
    ("seeds: [0]", "duplicate key 'epochs'"),
])
def test_bad_profile_fails_fast(tmp_path, data_root, edit, needle):
    text = (ROOT / "notebooks" / "profiles" / "smoke.yaml").read_text()
    bad = text.replace(edit, "betas: [-1.0, 30.0]" if "betas" in edit else edit + "\n    epochs: 3")
    assert bad != text
    (tmp_path / "smoke.yaml").write_text(bad)
    proc = _cli("run", "--profile", "smoke", env_extra={"LSUTILS_PROFILES": str(tmp_path)})
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1  # short, no traceback
    assert not data_root.exists()


def _failing_notebook(folder: Path) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "quick"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "from lsutils import artifacts\n"
            "artifacts.save_json(artifacts.stage_dir(profile, 'pinns') / 'ok.json', [1])"),
        nbformat.v4.new_code_cell("raise ValueError('beta must be positive')"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "02_broken.ipynb")


def test_failing_notebook_is_reported_and_leaves_no_partial_output(tmp_path, data_root, monkeypatch):
    nbdir, book, tmp = tmp_path / "nbs", tmp_path / "book", tmp_path / "tmp"
    nbdir.mkdir()
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    _failing_notebook(nbdir)
    with pytest.raises(pipeline.NotebookFailed) as err:
        pipeline.run_pipeline("smoke", notebooks_dir=nbdir, book_dir=book, build=False)
    msg = str(err.value)
    assert "notebook 02_broken.ipynb failed in cell 3: ValueError: beta must be positive" in msg
    assert "raise ValueError" in msg
    assert not (book / "notebooks" / "02_broken.ipynb").exists()  # no failed page in the book
    stage = data_root / "runs" / "smoke" / "pinns"
    assert sorted(p.name for p in stage.iterdir()) == ["ok.json", "ok.json.meta.json"]
    assert list(tmp.iterdir()) == []  # no lsutils-* working folder left behind
    kept = pipeline.failed_copy_path("smoke", nbdir / "02_broken.ipynb")
    assert f"kept at {kept}" in msg and kept.is_file() and kept.with_suffix(".log").is_file()


def test_a_selection_that_runs_nothing_is_an_error():
    nbs = [Path(f"{s}.ipynb") for s in ("01_a", "02_b", "03_c")]
    with pytest.raises(ValueError, match="selects no notebook"):
        pipeline.select_notebooks(nbs, only=["01"], start="02")


def _digests(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``root``: its content digest and modification time."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_runs_sharing_a_data_folder_and_a_relative_data_root(tmp_path):
    """Two runs of chapter 2 into one data folder at once both complete; their artifacts equal a
    third run's made alone, in a folder given as a relative LSUTILS_DATA (resolved against the
    command's working folder, not the notebooks'); a rerun of a finished chapter writes nothing."""
    shared = tmp_path / "shared"
    args = ("run", "--profile", "smoke", "--only", "02", "--no-build")
    procs = [subprocess.Popen([sys.executable, "-m", "lsutils", *args, "--book-dir", str(tmp_path / f"book{i}")],
                              cwd=ROOT, env={**os.environ, "LSUTILS_DATA": str(shared)}, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    alone = _cli(*args, "--book-dir", str(tmp_path / "book2"), env_extra={"LSUTILS_DATA": "rel"}, cwd=tmp_path,
                 timeout=900)
    assert alone.returncode == 0, alone.stderr
    assert not (ROOT / "notebooks" / "rel").exists() and not (ROOT / "rel").exists()
    names = sorted(n for n in _digests(shared / "runs") if ".meta.json" not in n)
    assert names == ["smoke/pinns/beta1_seed0.pt", "smoke/pinns/beta30_seed0.pt",  # the runs and the sweep's records
                     "smoke/pinns/cells/beta1_seed0.json", "smoke/pinns/cells/beta30_seed0.json"]
    assert names == sorted(n for n in _digests(tmp_path / "rel" / "runs") if ".meta.json" not in n)
    from lsutils import artifacts
    for name in names:  # the same weights, histories and metrics, bit for bit (wall-clock seconds apart)
        a, b = (artifacts.load_json(r / name) if name.endswith(".json") else artifacts.load_torch(r / name)
                for r in (shared / "runs", tmp_path / "rel" / "runs"))
        if isinstance(a, dict) and "state" in a:
            sa, sb = a.pop("state"), b.pop("state")
            assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), name
            a.pop("seconds"), b.pop("seconds")
        assert a == b, name
    before = _digests(shared)
    again = _cli(*args, "--book-dir", str(tmp_path / "book3"), env_extra={"LSUTILS_DATA": str(shared)}, timeout=900)
    assert again.returncode == 0, again.stderr
    assert _digests(shared) == before  # nothing rewritten: a finished, read-only folder would do


@pytest.fixture(scope="module")
def smoke_chain(tmp_path_factory):
    """Every notebook on the smoke profile in one data folder, then the site: (process, book, data)."""
    root = tmp_path_factory.mktemp("chain")
    book, data = root / "book", root / "data"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build", "notebooks", "_extra"))
    proc = _cli("run", "--profile", "smoke", "--book-dir", str(book), env_extra={"LSUTILS_DATA": str(data)},
                timeout=1800)
    return proc, book, data


@pytest.mark.pipeline
def test_smoke_chain_and_book_build(smoke_chain):
    proc, book, data_root = smoke_chain
    """Every notebook on the smoke profile, then the site, offline and self-contained."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    notebooks = pipeline.discover_notebooks()
    assert notebooks, "no notebooks found"
    for nb in notebooks:
        assert f"{nb.stem} done in" in proc.stdout
        executed = nbformat.read(book / "notebooks" / nb.name, as_version=4)
        errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors
        shown = json.dumps([c.get("outputs", []) for c in executed.cells])
        assert str(data_root) not in shown, f"{nb.stem} shows a path of this machine's data folder"
        assert (book / "_build" / "html" / "notebooks" / f"{nb.stem}.html").is_file()
    html = book / "_build" / "html"
    assert (html / "index.html").is_file()
    assert (html / "mathjax" / "tex-chtml.js").is_file()
    # No request to another host: no external src/href in script, link, img, iframe tags,
    # and no external url() in the site's stylesheets.
    tag = re.compile(r"<(script|link|img|iframe|source|video|audio)\b[^>]*\b(src|href)=\"((?:https?:)?//[^\"]+)\"")
    external = {m.group(3) for page in html.rglob("*.html") for m in tag.finditer(page.read_text())}
    assert external == set(), external
    css = re.compile(r"url\(['\"]?(?:https?:)?//|@import\s+['\"]?(?:url\()?['\"]?https?://")
    assert not [p for p in html.rglob("*.css") if css.search(p.read_text(errors="ignore"))]
    # every {cite} of the landing page resolves to an entry of the bibliography, which links arXiv
    cites = len(re.findall(r"\{cite\}`", (ROOT / "book" / "intro.md").read_text()))
    landing = (html / "intro.html").read_text()
    assert cites >= 7 and landing.count('class="bibtex-citation"') == cites
    assert landing.count('href="bibliography.html#') == cites
    assert "https://arxiv.org/abs/2411.09807" in (html / "bibliography.html").read_text()
    chapter = (html / "notebooks" / "02_train_pinns.html").read_text()
    assert "../_static/../mathjax/tex-chtml.js" in chapter
    assert "colab.research.google.com" in chapter  # the badge
    # the pinns stage was written for the smoke profile, nothing half-written
    runs = data_root / "runs" / "smoke"
    assert list((runs / "pinns").glob("beta1_seed0.pt*"))
    assert not list(runs.rglob(".*.tmp"))


def _strip_timings(obj):
    """``obj`` without wall-clock fields (``seconds``), tensors as lists: what must repeat exactly."""
    if isinstance(obj, dict):
        return {k: _strip_timings(v) for k, v in obj.items() if k not in ("seconds", "sha256")}
    if isinstance(obj, (list, tuple)):
        return [_strip_timings(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return ("tensor", str(obj.dtype), obj.tolist())
    return obj


def _same_artifact(a: Path, b: Path) -> bool:
    """Bit for bit, or (files that record wall-clock seconds) equal in everything else."""
    if a.read_bytes() == b.read_bytes():
        return True
    from lsutils import artifacts
    if a.name.endswith(".meta.json"):
        load = lambda p: __import__("json").loads(p.read_text())  # noqa: E731
    elif a.suffix == ".json":
        load = artifacts.load_json
    elif a.suffix == ".pt":
        load = artifacts.load_torch
    else:
        return False
    return _strip_timings(load(a)) == _strip_timings(load(b))


@pytest.mark.pipeline
@pytest.mark.parametrize("stem", [nb.stem for nb in pipeline.discover_notebooks()])
def test_each_notebook_runs_alone(stem, smoke_chain, tmp_path):
    """A chapter opened first, in an empty data folder, completes: what it needs upstream is made on
    demand, and every artifact equals the full chain's (the chapter's own stage bit for bit; upstream
    files that record training seconds equal in everything else)."""
    proc, _, chain = smoke_chain
    assert proc.returncode == 0, proc.stdout + proc.stderr
    alone = tmp_path / "data"
    run = _cli("run", "--profile", "smoke", "--only", stem, "--no-build", "--book-dir", str(tmp_path / "book"),
               env_extra={"LSUTILS_DATA": str(alone)}, timeout=1800)
    assert run.returncode == 0, run.stdout + run.stderr
    executed = nbformat.read(tmp_path / "book" / "notebooks" / f"{stem}.ipynb", as_version=4)
    said = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    upstream = {"03_hessian": ["01_train_resnets", "02_train_pinns"],
                "04_landscapes": ["01_train_resnets", "02_train_pinns", "03_hessian"],
                "05_topology": ["01_train_resnets", "02_train_pinns", "03_hessian", "04_landscapes"],
                "06_jump_and_retrain": ["01_train_resnets"],
                "07_connectivity": ["01_train_resnets", "02_train_pinns"],
                "09_training_geometry": ["01_train_resnets", "02_train_pinns"]}.get(stem, [])
    for owner in upstream:  # each missing upstream stage is announced once, naming its chapter
        assert said.count(f"producing it with {owner}'s settings") == 1, (owner, said)
    from lsutils.artifacts import STAGES
    own = next(stage for stage, nb in STAGES.items() if nb == stem)
    files = sorted(p.relative_to(alone) for p in (alone / "runs").rglob("*") if p.is_file())
    assert any(f.parts[2] == own for f in files), f"{stem} wrote nothing under {own}/"
    for f in files:
        assert (chain / f).is_file(), f"{f} is not in the full chain's artifacts"
        if f.parts[2] == own and own not in ("resnets", "pinns", "hessian", "jump_retrain", "taxonomy"):
            assert (alone / f).read_bytes() == (chain / f).read_bytes(), f
        else:
            assert _same_artifact(alone / f, chain / f), f


# The full profile's code path at toy size: its settings, with sizes (and the checks that need
# paper-scale results) overridden down, on a CIFAR-10 archive written in the official format.
FULL_AT_TOY_SIZE = {
    "notebooks.01_train_resnets.n_train": 64, "notebooks.01_train_resnets.n_test": 32,
    "notebooks.01_train_resnets.seeds": [0], "notebooks.01_train_resnets.epochs": 1,
    "notebooks.01_train_resnets.batch_size": 32, "notebooks.01_train_resnets.min_skip_acc": 0.0,
    "notebooks.02_train_pinns.betas": [1.0, 30.0], "notebooks.02_train_pinns.seeds": [0],
    "notebooks.02_train_pinns.n_collocation": 64, "notebooks.02_train_pinns.n_initial": 16,
    "notebooks.02_train_pinns.n_boundary": 8, "notebooks.02_train_pinns.width": 8,
    "notebooks.02_train_pinns.depth": 2, "notebooks.02_train_pinns.adam_steps": 10,
    "notebooks.02_train_pinns.lbfgs_steps": 3, "notebooks.02_train_pinns.max_low_error": 0.0,
    "notebooks.02_train_pinns.min_high_error": 0.0, "notebooks.02_train_pinns.min_loss_drop": 0.0,
    "notebooks.03_hessian.n_samples": 32, "notebooks.03_hessian.top_k": 3, "notebooks.03_hessian.max_steps": 12,
    "notebooks.03_hessian.trace_probes": 4, "notebooks.03_hessian.slq_runs": 1, "notebooks.03_hessian.slq_steps": 6,
    "notebooks.03_hessian.pyhessian_check": False,
    "notebooks.04_landscapes.n_samples": 32, "notebooks.04_landscapes.resolution_2d": 5,
    "notebooks.04_landscapes.resolution_3d": 3, "notebooks.04_landscapes.interp_points": 3,
    "notebooks.05_topology.n_samples": 32, "notebooks.05_topology.compare_resolution": 5,
    "notebooks.06_jump_and_retrain.poor_epochs": 1, "notebooks.06_jump_and_retrain.jump_steps": [0.5, 1.0],
    "notebooks.06_jump_and_retrain.jump_seeds": [0], "notebooks.06_jump_and_retrain.retrain_epochs": 2,
    "notebooks.06_jump_and_retrain.loss_samples": 32, "notebooks.06_jump_and_retrain.knn": 3,
    "notebooks.06_jump_and_retrain.min_acc_gap": -100.0,
    "notebooks.07_connectivity.n_samples": 32, "notebooks.07_connectivity.bn_samples": 32,
    "notebooks.07_connectivity.points": 3, "notebooks.07_connectivity.curve_steps": 2,
    "notebooks.07_connectivity.connector_steps": 2, "notebooks.07_connectivity.pinn_steps": 2,
    "notebooks.07_connectivity.simplex_steps": 2, "notebooks.07_connectivity.structure_samples": 2,
    "notebooks.07_connectivity.cut_resolution": 1, "notebooks.07_connectivity.wedge_dim": 20,
    "notebooks.07_connectivity.wedge_count": 3, "notebooks.07_connectivity.wedge_short": 3,
    "notebooks.07_connectivity.wedge_trials": 1, "notebooks.07_connectivity.max_curve_ratio": 0.0,
    "notebooks.07_connectivity.max_end_gap": 0.0,
    "notebooks.08_taxonomy.widths": [2], "notebooks.08_taxonomy.batch_sizes": [32],
    "notebooks.08_taxonomy.noise_levels": [0.5], "notebooks.08_taxonomy.noise_batch": 32,
    "notebooks.08_taxonomy.seeds": [0, 1], "notebooks.08_taxonomy.n_train": 64, "notebooks.08_taxonomy.n_test": 32,
    "notebooks.08_taxonomy.epochs": 1, "notebooks.08_taxonomy.hessian_samples": 32,
    "notebooks.08_taxonomy.lanczos_steps": 4, "notebooks.08_taxonomy.trace_probes": 2,
    "notebooks.08_taxonomy.curve_steps": 2, "notebooks.08_taxonomy.curve_points": 3,
    "notebooks.08_taxonomy.path_samples": 32, "notebooks.08_taxonomy.cka_samples": 32,
    "notebooks.08_taxonomy.min_acc_gain": 0.0,
    "notebooks.09_training_geometry.samples": 32, "notebooks.09_training_geometry.batch_size": 32,
    "notebooks.09_training_geometry.top_k": 11, "notebooks.09_training_geometry.spectrum_k": 11,
    "notebooks.09_training_geometry.max_steps": 14, "notebooks.09_training_geometry.trace_probes": 2,
    "notebooks.09_training_geometry.minibatches": 1, "notebooks.09_training_geometry.pinn_top_k": 3,
    "notebooks.09_training_geometry.radii": [1.0], "notebooks.09_training_geometry.dims": [4],
    "notebooks.09_training_geometry.gold_train": 64, "notebooks.09_training_geometry.gold_width": 2,
    "notebooks.09_training_geometry.gold_steps": 2, "notebooks.09_training_geometry.gold_curvature_dims": 4,
    "notebooks.09_training_geometry.model_features": 32, "notebooks.09_training_geometry.model_per_class": 10,
    "notebooks.09_training_geometry.min_confinement": 0.0,
}


@pytest.mark.pipeline
def test_full_profile_code_path_at_toy_size(tmp_path):
    """Every notebook through the full profile's code path (CIFAR-10, 2-D ResNets, the full
    profile's settings) with sizes overridden down, on a synthetic archive in the official format."""
    from lsutils import data as lsdata
    from lsutils.config import load_profile

    sys.path.insert(0, str(Path(__file__).parent))
    from test_data import _official_archive

    data = tmp_path / "data"
    (data / "raw").mkdir(parents=True)
    _, md5 = _official_archive(data / "raw" / lsdata.CIFAR10_ARCHIVE, n_per_batch=16, n_test=32)
    full = load_profile("full", overrides=FULL_AT_TOY_SIZE)
    assert full.section("01_train_resnets").dataset == "cifar10" and full.gpu_sized
    sets = [a for k, v in FULL_AT_TOY_SIZE.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    proc = _cli("run", "--profile", "full", "--no-build", "--book-dir", str(tmp_path / "book"), *sets,
                env_extra={"LSUTILS_DATA": str(data), lsdata.CIFAR10_MD5_ENV: md5}, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = data / "runs" / "full"
    meta = json.loads((runs / "resnets" / "resnet20_skip_seed0" / "final.json.meta.json").read_text())
    assert meta["params"]["model"]["dim"] == 2 and meta["params"]["data"]["name"] == "cifar10"
    assert meta["params"]["data"]["n_train"] == 64
    assert {p.name for p in (runs / "topology").iterdir()} >= {"summaries.json", "planes"}
    assert (runs / "jump_retrain" / "summary.json").is_file()
    assert (runs / "connectivity" / "summary.json").is_file()
    assert (runs / "taxonomy" / "summary.json").is_file()
    assert (runs / "training_geometry" / "summary.json").is_file()


@pytest.mark.pipeline
def test_jump_sidecars_record_the_recipes_the_networks_were_trained_with(smoke_chain):
    """Chapter 6's artifacts record the settings actually used: each network's jumps carry its
    own training recipe (the well network's from chapter 1, the poor one's without weight decay
    and augmentation), and the poor network's run carries its recipe too."""
    from lsutils import artifacts
    from lsutils.config import load_profile

    proc, _, chain = smoke_chain
    assert proc.returncode == 0, proc.stdout + proc.stderr
    p = load_profile("smoke")
    well = p.section("01_train_resnets").train_config()
    poor = p.section("06_jump_and_retrain").poor_config(well)
    stage = chain / "runs" / "smoke" / "jump_retrain"
    trained = artifacts.read_meta(stage / "poor" / "trained" / "final.json")["params"]["train"]
    assert trained == dataclasses.asdict(poor) and trained["weight_decay"] == 0.0 and not trained["augment"]
    for network, recipe in (("well", well), ("poorly", poor)):
        jumps = artifacts.read_meta(stage / network / "jumps" / "jumps.json")["params"]["config"]
        expected = p.section("06_jump_and_retrain").jump_config(recipe)
        assert jumps == {**dataclasses.asdict(expected), "steps": list(expected.steps), "seeds": list(expected.seeds)}
        assert (jumps["weight_decay"], jumps["augment"]) == (recipe.weight_decay, recipe.augment)
    summary = artifacts.read_meta(stage / "summary.json")["params"]["jumps"]
    assert summary["well-generalizing"]["weight_decay"] == well.weight_decay
    assert summary["poorly-generalizing"]["weight_decay"] == 0.0


def _chromium_or_skip():
    pytest.importorskip("playwright", reason="pip install playwright (make install does it)")
    from browser import chromium

    if chromium() is None:
        pytest.skip("the browser test needs Chromium: `apt-get install chromium` (.ci/run installs it)")


@pytest.mark.pipeline
def test_site_in_a_browser(smoke_chain, tmp_path):
    """Every page of the smoke book in headless Chromium, at desktop and phone width."""
    _chromium_or_skip()
    from browser import check_site

    proc, book, _ = smoke_chain
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shots = Path(os.environ.get("LSUTILS_SCREENSHOTS", tmp_path / "screenshots"))
    problems, measured = check_site(book / "_build" / "html", widths=(1280, 390), shots=shots)
    assert not problems, f"{len(problems)} problems (screenshots of the failing pages in {shots}):\n" + \
        "\n".join(problems)
    pages = {rel for rel, _ in measured}
    assert {"intro.html", "running.html", "troubleshooting.html", "your_model.html", "glossary.html",
            "bibliography.html"} <= pages
    assert measured["notebooks/04_landscapes.html", 1280]["plots"] >= 3
    assert measured["notebooks/05_topology.html", 1280]["plots"] >= 1
    assert measured["notebooks/07_connectivity.html", 1280]["plots"] >= 1
    for nb in pipeline.discover_notebooks():
        m = measured[f"notebooks/{nb.stem}.html", 1280]
        assert m["math"] > 0 and m["images"] >= 2, (nb.stem, m)


def test_the_browser_check_catches_what_a_reader_would_see(tmp_path):
    """The checker itself, on hand-made pages that each break one condition."""
    _chromium_or_skip()
    from browser import check_site

    pages = {
        "external.html": '<img src="http://example.org/x.png" alt="x">',
        "console.html": "<script>console.error('boom')</script>",
        "exception.html": "<script>undefined_function()</script>",
        "stderr.html": '<div class="output stderr"><pre>warning</pre></div>',
        "path.html": "<p>saved to /tmp/lsutils-run/landscape.npz</p>",
        "bar.html": "<pre>training:  40%|####      | 4/10</pre>",
        "image.html": '<img src="missing.png" alt="a figure">',
        "traceback.html": "<pre>Traceback (most recent call last):\n  File x</pre>",
        "citation.html": "<article><p>as shown in []</p></article>",
        "wide.html": '<div style="width: 3000px">wide</div>',
        "clean.html": "<p>fine</p>",
    }
    for name, body in pages.items():
        (tmp_path / name).write_text(f"<!doctype html><html><body>{body}</body></html>")
    problems, _ = check_site(tmp_path, widths=(1280,), shots=tmp_path / "shots")
    for name in pages:
        hits = [p for p in problems if p.startswith(name)]
        assert bool(hits) == (name != "clean.html"), (name, problems)
    assert (tmp_path / "shots" / "console-1280.png").is_file()


def test_your_own_model_page_runs_as_written():
    """book/your_model.md: its Python blocks, in order, on the public API."""
    text = (ROOT / "book" / "your_model.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "your_model.md", "exec"), namespace)  # noqa: S102 - the page's own code
    assert namespace["land"].loss.shape == (21, 21)
    assert namespace["summary"].n_minima >= 1 and namespace["top"].values[0] > 0
