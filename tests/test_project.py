"""Project hygiene: notebooks without outputs and in the book's shape, links in sync,
and environment.yml listing exactly pyproject.toml's dependencies."""

from __future__ import annotations

import json
import re
import tomllib

import pytest
import yaml

from lsutils.book import sync_notebook_links
from lsutils.config import repo_root
from lsutils.pipeline import discover_notebooks

ROOT = repo_root()
NOTEBOOKS = discover_notebooks()


def test_there_are_notebooks():
    assert [nb.stem for nb in NOTEBOOKS][:1] and all(re.match(r"\d\d_\w+$", nb.stem) for nb in NOTEBOOKS)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_committed_without_outputs(nb):
    for cell in json.loads(nb.read_text())["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_shape(nb):
    cells = json.loads(nb.read_text())["cells"]
    md = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert len(re.findall(r"^# ", md, flags=re.M)) == 1, "exactly one H1 title"
    sections = re.findall(r"^## (.+)$", md, flags=re.M)
    for required in ("Overview", "Setup", "Summary", "What's next", "References"):
        assert required in sections, required
    assert sections[0] == "Overview" and sections[-3:] == ["Summary", "What's next", "References"]
    tags = [t for c in cells for t in c["metadata"].get("tags", [])]
    assert tags.count("parameters") == 1
    assert "colab-badge" in cells[0]["metadata"].get("tags", [])


def test_colab_links_follow_config():
    assert sync_notebook_links(check=True) == [], "run `python -m lsutils links`"


def test_toc_lists_every_notebook():
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    files = [c["file"] for c in toc["chapters"]]
    assert [f for f in files if f.startswith("notebooks/")] == [f"notebooks/{nb.stem}" for nb in NOTEBOOKS]
    assert files[-1] == "bibliography" and (ROOT / "book" / "bibliography.md").is_file()


def _name(req: str) -> str:
    return re.split(r"[<>=!~ ;\[]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _spec(req: str) -> str:
    return req.strip()[len(_name(req)):].replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): _spec(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda_names = {"pytorch": "torch"}  # conda-forge name -> PyPI name
    listed = {}
    for dep in env:
        for req in (dep["pip"] if isinstance(dep, dict) else [dep]):
            name = conda_names.get(_name(req), _name(req))
            if name not in ("python", "pip", "nodejs"):
                listed[name] = _spec(req)
    assert listed == wanted


def _code(nb) -> str:
    return "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")


# what building an artifact's location by hand looks like: folders, file names, file-name patterns
_PATHS = re.compile(r"stage_dir|run_dir_for|run_path|data/runs|LSUTILS_DATA|\bartifacts\.|"
                    r"\.(?:pt|npz|json|vti|ipynb)\b[\"']|_seed\{|/\s*f?[\"']\w")
_PRIVATE = re.compile(r"^\s*(?:from\s+lsutils\S*\s+import\s+.*\b_\w+|import\s+lsutils\S*\._)|lsutils\.\w*\._", re.M)
_SET_ATTR = re.compile(r"^\s*(?!self\.)[A-Za-z_]\w*(?:\[[^\]]*\])*(?:\.\w+)+\s*(?:[-+*/]?=)(?!=)", re.M)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_ask_by_meaning(nb):
    """No artifact path or file-name pattern, no private import, no attribute set on a library
    object from outside: a chapter asks the catalog for what it needs."""
    code = _code(nb)
    assert not _PATHS.findall(code), _PATHS.findall(code)
    assert not _PRIVATE.findall(code), _PRIVATE.findall(code)
    assert not _SET_ATTR.findall(code), _SET_ATTR.findall(code)


def test_the_scan_finds_what_it_forbids():
    assert _PATHS.search('path = artifacts.stage_dir(profile, "hessian") / f"{name}.pt"')
    assert _PATHS.search('load_report(hess / f"{spec.name}_seed{row[\'seed\']}.pt", obj)')
    assert _PRIVATE.search("from lsutils.landscape import _stack")
    assert _SET_ATTR.search("obj.chunk_size = pinn_chunk")
    assert not _SET_ATTR.search("x == y.z") and not _PATHS.search("catalog.curvature(m)")
