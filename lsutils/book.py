"""The book's single source of truth for where the repository lives.

``book/_config.yml`` holds one ``repository.url`` (and ``branch``). Every
notebook opens with a Colab badge (a cell tagged ``colab-badge``) and an install
cell guarded by ``google.colab`` (tagged ``colab-install``); both are generated
from that URL by :func:`sync_notebook_links` (``python -m lsutils links``), and
a test keeps the committed notebooks in sync with it.

The badge is an inline SVG (a ``data:`` URI), so the rendered site requests
nothing from another host.

Example:
    >>> colab_url("02_train_pinns.ipynb").endswith("/blob/main/notebooks/02_train_pinns.ipynb")
    True
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import yaml

from .paths import repo_root

__all__ = ["repository", "colab_url", "badge_markdown", "install_source", "sync_notebook_links",
           "built_profile", "scale_statement"]

_BADGE_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="112" height="20" role="img">'
    '<rect rx="3" width="112" height="20" fill="#555"/>'
    '<rect rx="3" x="42" width="70" height="20" fill="#f9ab00"/>'
    '<rect x="42" width="4" height="20" fill="#f9ab00"/>'
    '<g font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
    '<text x="7" y="14" fill="#fff">Open</text><text x="49" y="14" fill="#222">in Colab</text>'
    '</g></svg>'
)


def repository(config: Path | None = None) -> tuple[str, str]:
    """``(url, branch)`` from ``book/_config.yml``."""
    config = repo_root() / "book" / "_config.yml" if config is None else config
    repo = (yaml.safe_load(config.read_text()) or {}).get("repository") or {}
    url = str(repo.get("url", "")).rstrip("/")
    if not url.startswith("https://github.com/"):
        raise ValueError(f"repository.url in {config} = {url!r}; allowed: https://github.com/<owner>/<repo>")
    return url, str(repo.get("branch", "main"))


def colab_url(notebook: str, config: Path | None = None) -> str:
    """The Colab address that opens ``notebooks/<notebook>`` from the repository."""
    url, branch = repository(config)
    return url.replace("https://github.com/", "https://colab.research.google.com/github/") + \
        f"/blob/{branch}/notebooks/{notebook}"


def badge_markdown(notebook: str, config: Path | None = None) -> str:
    """The badge cell's Markdown: an inline-SVG 'Open in Colab' link."""
    svg = base64.b64encode(_BADGE_SVG.encode()).decode()
    return (f'<a href="{colab_url(notebook, config)}" target="_blank">'
            f'<img alt="Open in Colab" src="data:image/svg+xml;base64,{svg}"/></a>')


def install_source(config: Path | None = None) -> str:
    """The install cell: on Colab, install this repository's ``lsutils`` (GPU torch stays)."""
    url, branch = repository(config)
    return (
        "# On Colab, install the book's library (Colab's own torch is kept); elsewhere do nothing.\n"
        "import subprocess\n"
        "import sys\n"
        "if \"google.colab\" in sys.modules:\n"
        "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\",\n"
        f"                    \"lsutils @ git+{url}@{branch}\"], check=True)"
    )


def sync_notebook_links(notebooks: list[Path] | None = None, *, check: bool = False,
                        config: Path | None = None) -> list[Path]:
    """Rewrite the badge and install cells of every notebook from ``_config.yml``.

    Args:
        notebooks: the notebooks (default: ``notebooks/NN_*.ipynb``).
        check: report what is out of sync without writing.

    Returns:
        The notebooks that were (or, with ``check``, would be) changed.

    Raises:
        ValueError: a notebook lacks a cell tagged ``colab-badge`` or ``colab-install``.
    """
    if notebooks is None:
        notebooks = sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    changed = []
    install = install_source(config)
    for path in notebooks:
        nb = json.loads(path.read_text())
        want = {"colab-badge": badge_markdown(path.name, config), "colab-install": install}
        dirty = False
        for tag, text in want.items():
            cells = [c for c in nb["cells"] if tag in c.get("metadata", {}).get("tags", [])]
            if len(cells) != 1:
                raise ValueError(f"{path.name}: expected one cell tagged {tag!r}, found {len(cells)}")
            if "".join(cells[0]["source"]) != text:
                cells[0]["source"] = text.splitlines(keepends=True)
                dirty = True
        if dirty:
            changed.append(path)
            if not check:
                path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return changed


_DATA = {"mnist1d": "MNIST-1D (40-sample 1-D signals, 10 classes, generated locally)",
         "cifar10": "CIFAR-10 (32x32 colour images, 10 classes)"}


def built_profile(book_dir: Path) -> str | None:
    """The profile the executed chapters in ``book_dir/notebooks`` ran with (None when none ran)."""
    import re

    for path in sorted((book_dir / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
                m = re.search(r"^profile = ['\"](\w+)['\"]", "".join(cell["source"]), re.M)
                if m:
                    return m.group(1)
    return None


def scale_statement(profile: str | None) -> str:
    """The landing page's note on what the reader sees: this site's profile and data beside
    the papers' scale (the ``full`` profile).

    Example:
        >>> scale_statement("smoke").splitlines()[3].startswith("This site was built with the **smoke** profile")
        True
    """
    from .config import load_profile

    head = ":::{admonition} What you are looking at\n:class: note\n"
    if profile is None:
        return head + "No chapter has been run for this build yet: `make book` runs them.\n:::\n"
    here, paper = load_profile(profile), load_profile("full")

    def p(prof, stem: str) -> dict:
        return prof.notebook_params(stem)

    def row(what: str, stem: str, show) -> str:
        return f"| {what} | {show(p(here, stem))} | {show(p(paper, stem))} |"

    rows = [
        row("data", "01_train_resnets", lambda q: _DATA.get(q["dataset"], q["dataset"])),
        row("ResNet-20 runs", "01_train_resnets",
            lambda q: f"{len(q['seeds'])} seeds x 2 variants, {q['epochs']} epochs"),
        row("PINN runs", "02_train_pinns",
            lambda q: f"{len(q['betas'])} values of beta x {len(q['seeds'])} seeds, "
                      f"{q['adam_steps']} Adam + {q['lbfgs_steps']} L-BFGS steps"),
        row("Hessian", "03_hessian", lambda q: f"{q['n_samples']} samples, top {q['top_k']} eigenvalues"),
        row("2-D / 3-D landscapes", "04_landscapes",
            lambda q: f"{q['resolution_2d']}x{q['resolution_2d']} planes, {q['resolution_3d']}^3 blocks"),
        row("topology comparison", "05_topology",
            lambda q: f"{q['compare_resolution']}x{q['compare_resolution']} planes per model"),
    ]
    desc = here.description.rstrip(".")
    return (head + "\n" + f"This site was built with the **{profile}** profile: {desc}. "
            "Its numbers are this scale's, not the papers': each chapter sets them beside the "
            "published ones and says which findings carry over. The `full` profile runs the papers' "
            "scale on a GPU (see *Running this book*).\n\n"
            f"| | this site ({profile}) | papers' scale (full) |\n|:--|:--|:--|\n" + "\n".join(rows) + "\n:::\n")
