"""The pipeline: selection, clear failures, nothing half-written, and the smoke chain."""

from __future__ import annotations

import hashlib
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
    assert names == ["smoke/pinns/beta1_seed0.pt", "smoke/pinns/beta30_seed0.pt"]
    assert names == sorted(n for n in _digests(tmp_path / "rel" / "runs") if ".meta.json" not in n)
    from lsutils import artifacts
    for name in names:  # the same weights, histories and metrics, bit for bit (wall-clock seconds apart)
        a, b = (artifacts.load_json(r / name) if name.endswith(".json") else artifacts.load_torch(r / name)
                for r in (shared / "runs", tmp_path / "rel" / "runs"))
        if isinstance(a, dict):
            sa, sb = a.pop("state"), b.pop("state")
            assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), name
            a.pop("seconds"), b.pop("seconds")
        assert a == b, name
    before = _digests(shared)
    again = _cli(*args, "--book-dir", str(tmp_path / "book3"), env_extra={"LSUTILS_DATA": str(shared)}, timeout=900)
    assert again.returncode == 0, again.stderr
    assert _digests(shared) == before  # nothing rewritten: a finished, read-only folder would do


@pytest.mark.pipeline
def test_smoke_chain_and_book_build(tmp_path, data_root):
    """Every notebook on the smoke profile, then the site, offline and self-contained."""
    book = tmp_path / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build", "notebooks", "_extra"))
    proc = _cli("run", "--profile", "smoke", "--book-dir", str(book), timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    notebooks = pipeline.discover_notebooks()
    assert notebooks, "no notebooks found"
    for nb in notebooks:
        assert f"{nb.stem} done in" in proc.stdout
        executed = nbformat.read(book / "notebooks" / nb.name, as_version=4)
        errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors
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
    chapter = (html / "notebooks" / "02_train_pinns.html").read_text()
    assert "../_static/../mathjax/tex-chtml.js" in chapter
    assert "colab.research.google.com" in chapter  # the badge
    # the pinns stage was written for the smoke profile, nothing half-written
    runs = data_root / "runs" / "smoke"
    assert list((runs / "pinns").glob("beta1_seed0.pt*"))
    assert not list(runs.rglob(".*.tmp"))
