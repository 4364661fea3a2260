"""Run the book's notebooks in order for a profile, then build the site.

``python -m lsutils run --profile quick`` executes ``notebooks/NN_*.ipynb`` in
order with papermill, injecting the profile's parameters, writes each executed
notebook into ``book/notebooks/`` (only once it has finished: a failed run never
replaces a good page), and builds the Jupyter Book. It stops at the first
failing notebook and prints its name, the cell and the error.

Notebooks are restartable on their own (train-or-load, resumable grids), so a
second run reuses what the first one finished; ``--force`` deletes the selected
notebooks' artifacts first.

Example:
    >>> [nb.stem for nb in discover_notebooks()][:2]
    ['01_train_resnets', '02_train_pinns']
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, TextIO

from . import artifacts
from .book import built_profile, scale_statement
from .display import BOOK_ENV
from .config import OVERRIDES_ENV, Profile, active_overrides, load_profile
from .paths import data_root, repo_root

__all__ = ["NotebookFailed", "BookBuildError", "discover_notebooks", "select_notebooks",
           "run_notebook", "run_pipeline", "build_book", "finish_page", "sweep_partial_files", "failed_copy_path"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names it, the cell and the error."""


class BookBuildError(RuntimeError):
    """Jupyter Book could not build the site."""


def discover_notebooks(folder: Path | None = None) -> list[Path]:
    """The book's notebooks, ``NN_name.ipynb``, in order (default: ``notebooks/``)."""
    folder = repo_root() / "notebooks" if folder is None else Path(folder)
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def select_notebooks(notebooks: Sequence[Path], only: Sequence[str] | None = None,
                     start: str | None = None) -> list[Path]:
    """Filter by ``only`` (numbers or stems) and ``start`` (run from this one on).

    Raises:
        ValueError: a selector that matches no notebook (the message lists them).
    """
    def matches(nb: Path, key: str) -> bool:
        return nb.stem == key or nb.stem[:2] == key.zfill(2)

    known = ", ".join(nb.stem for nb in notebooks) or "(none)"
    out = list(notebooks)
    if start is not None:
        idx = [i for i, nb in enumerate(out) if matches(nb, start)]
        if not idx:
            raise ValueError(f"--from {start!r} matches no notebook; allowed: {known}")
        out = out[idx[0]:]
    if only:
        for key in only:
            if not any(matches(nb, key) for nb in notebooks):
                raise ValueError(f"--only {key!r} matches no notebook; allowed: {known}")
        out = [nb for nb in out if any(matches(nb, k) for k in only)]
    if not out:
        raise ValueError(f"--from {start!r} with --only {', '.join(only or [])} selects no notebook; "
                         f"allowed: {known}")
    return out


@dataclass
class NotebookResult:
    name: str
    seconds: float
    output: Path


def sweep_partial_files(root: Path) -> int:
    """Delete temporary files that interrupted atomic writes left under ``root``.

    Only files whose writing process is gone are deleted (their names carry its PID), so
    a run sharing the data folder keeps its writes in flight.
    """
    stale = artifacts.stale_temp_files(root)
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


def failed_copy_path(profile: str, nb: Path) -> Path:
    """Where the executed copy of a notebook that failed is kept (one per notebook, replaced
    by the next failure): ``<data_root>/runs/<profile>/_failed/<notebook>``."""
    return data_root() / "runs" / profile / "_failed" / nb.name


def _source_cell_number(executed: Path, index: int | None) -> int | None:
    """1-based position, in the source notebook, of cell ``index`` of the executed copy
    (which holds papermill's extra cell of injected parameters)."""
    if index is None:
        return None
    try:
        cells = json.loads(executed.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return index + 1
    injected = [i for i, c in enumerate(cells)
                if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    return index + (0 if injected and injected[0] < index else 1)


def _failure_message(nb: Path, err: Exception, failed_copy: Path) -> str:
    cell = _source_cell_number(failed_copy, getattr(err, "cell_index", None))
    ename, evalue = getattr(err, "ename", type(err).__name__), getattr(err, "evalue", str(err))
    source = getattr(err, "source", "") or ""
    first = next((ln for ln in source.splitlines() if ln.strip() and not ln.startswith("#")), "")
    where = f"cell {cell}" if cell is not None else "a cell"
    lines = [f"notebook {nb.name} failed in {where}: {ename}: {_ANSI.sub('', str(evalue))}"]
    if first:
        lines.append(f"  the cell starts: {first.strip()[:120]}")
    lines.append(f"  the executed notebook is kept at {failed_copy} (the kernel's log beside it)")
    return "\n".join(lines)


def run_notebook(nb: Path, profile: Profile, book_dir: Path, *, progress: bool = False,
                 out: TextIO = sys.stdout) -> NotebookResult:
    """Execute one notebook with the profile's parameters into ``book_dir/notebooks``.

    With ``progress``, a status line on ``out`` shows the running cell out of how many and
    the time elapsed (refreshed every few seconds, also inside a long cell).

    Raises:
        NotebookFailed: the notebook raised (the executed copy is kept in a
            temporary folder, never in the book).
    """
    import papermill as pm
    from traitlets.config import Config

    params = profile.notebook_params(nb.stem)
    dest = book_dir / "notebooks" / nb.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"lsutils-{nb.stem}-"))
    tmp_out = work / nb.name
    log = work / f"{nb.stem}.log"
    start = time.perf_counter()
    # Progress bars belong on a terminal, not in the book's pages: the kernels that
    # papermill starts inherit this and run their loops without bars (this process's own
    # status line is unaffected).
    os.environ["LSUTILS_NO_PROGRESS"] = "1"
    os.environ[BOOK_ENV] = "1"  # figures and interactive plots render for the site
    # The kernel talks to papermill over local sockets (IPC), not unencrypted TCP.
    config = Config({"KernelManager": {"transport": "ipc", "ip": str(work / "kernel")}})
    bar = {"disable": not progress, "file": out, "desc": f"  {nb.stem}", "leave": False, "ncols": 100,
           "bar_format": "{desc}: cell {n_fmt}/{total_fmt}, {elapsed} elapsed"}
    try:
        with _stderr_to(log), _ticking(progress):  # the kernel's own chatter and tracebacks go to its log
            pm.execute_notebook(str(nb), str(tmp_out), parameters=params, kernel_name="python3",
                                progress_bar=bar, cwd=str(nb.parent), start_timeout=120, config=config)
    except Exception as err:  # papermill wraps kernel errors; keep every detail
        kept = failed_copy_path(profile.name, nb)
        kept.parent.mkdir(parents=True, exist_ok=True)
        if tmp_out.is_file():
            shutil.move(str(tmp_out), kept)
        if log.is_file():
            shutil.move(str(log), kept.with_suffix(".log"))
        raise NotebookFailed(_failure_message(nb, err, kept)) from None
    else:
        finish_page(tmp_out)
        shutil.move(str(tmp_out), dest)
    finally:
        os.environ.pop(BOOK_ENV, None)
        shutil.rmtree(work, ignore_errors=True)
        sweep_partial_files(data_root() / "runs" / profile.name)
    return NotebookResult(nb.stem, time.perf_counter() - start, dest)


@contextlib.contextmanager
def _ticking(enabled: bool, every: float = 5.0) -> Iterator[None]:
    """Redraw the open progress bars every ``every`` seconds, so the elapsed time moves
    while one long cell runs."""
    if not enabled:
        yield
        return
    import threading

    from tqdm.std import tqdm

    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            for bar in list(getattr(tqdm, "_instances", ())):
                bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send this process's standard error (file descriptor 2, which the kernels it starts
    inherit) to ``path`` for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as fh:
            os.dup2(fh.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


_ASSIGN = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<value>[^#]*?)\s*(?:#\s*(?P<meaning>.*))?$")


def _parameter_lines(source: str) -> dict[str, tuple[Any, str]]:
    """``name -> (value, meaning)`` from a parameters cell of ``name = value  # meaning`` lines."""
    import ast

    found = {}
    for line in source.splitlines():
        m = _ASSIGN.match(line.strip())
        if m:
            try:
                value = ast.literal_eval(m["value"])
            except (ValueError, SyntaxError):
                value = m["value"]
            found[m["name"]] = (value, (m["meaning"] or "").strip())
    return found


def finish_page(executed: Path) -> None:
    """Turn an executed notebook into a book page.

    * The parameters the run used (papermill's injected cell) are shown as a table with
      their meaning (the comments of the notebook's parameters cell) and the default they
      replaced; both code cells are hidden.
    * A figure shown by :func:`lsutils.display.figure` becomes a numbered figure: its
      caption and name go into the cell's ``mystnb.figure`` metadata, its alternative text
      into ``mystnb.image``, and the caption printed for notebook readers is dropped.
    """
    from .display import FIGURE_KEY, parameters_table

    nb = json.loads(executed.read_text())
    cells = nb["cells"]
    tags = [c.setdefault("metadata", {}).setdefault("tags", []) for c in cells]
    defaults = next((c for c, t in zip(cells, tags) if "parameters" in t), None)
    injected = next((c for c, t in zip(cells, tags) if "injected-parameters" in t), None)
    if defaults is not None:
        declared = _parameter_lines("".join(defaults["source"]))
        used = {k: v for k, (v, _) in declared.items()}
        shown = defaults
        if injected is not None:
            used.update((k, v) for k, (v, _) in _parameter_lines("".join(injected["source"])).items())
            shown = injected
        text = parameters_table(used, {k: m for k, (_, m) in declared.items()},
                                {k: v for k, (v, _) in declared.items()})
        shown["outputs"] = [{"output_type": "display_data", "metadata": {},
                             "data": {"text/markdown": text, "text/plain": text}}]
        shown["metadata"]["tags"] = sorted(set(shown["metadata"]["tags"]) | {"remove-input"})
        if injected is not None:
            defaults["metadata"]["tags"] = sorted(set(defaults["metadata"]["tags"]) | {"remove-cell"})
    for cell in cells:
        figs = [o for o in cell.get("outputs", []) if FIGURE_KEY in o.get("metadata", {})]
        if len(figs) != 1:
            continue  # none, or several in one cell: captions stay as printed
        spec = figs[0]["metadata"][FIGURE_KEY]["figure"]
        cell["outputs"].remove(figs[0])
        mystnb = cell["metadata"].setdefault("mystnb", {})
        mystnb["figure"] = {"caption": spec["caption"], "name": spec["name"]}
        mystnb["image"] = {"alt": spec["alt"]}
    executed.write_text(json.dumps(nb, indent=1, ensure_ascii=False))


def _write_favicon(path: Path) -> None:
    """The site's icon as ``favicon.ico`` (the pages link ``images/favicon.svg``; a page without
    the link, such as the redirecting ``index.html``, makes the browser ask for this one)."""
    if path.is_file():
        return
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((0, 0, 31, 31), radius=6, fill=(31, 119, 180, 255))
    draw.line([(3, 24), (9, 22), (13, 10), (17, 14), (20, 20), (24, 12), (29, 6)], fill="white", width=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="ICO")


def _plotly_source() -> Path | None:
    """plotly.js as shipped in the installed plotly package (None without plotly)."""
    try:
        import plotly
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def _mathjax_source() -> Path:
    return repo_root() / "node_modules" / "mathjax" / "es5"


def build_book(book_dir: Path | None = None, *, out: TextIO = sys.stdout) -> Path:
    """Build the Jupyter Book at ``book_dir`` with MathJax served from the site itself.

    MathJax 3 (``node_modules/mathjax/es5``, from ``npm ci``) is copied to
    ``<book>/_extra/mathjax`` and published at the site's root, so the built
    pages load nothing from another host.

    Returns:
        The path of the built ``index.html``.
    """
    book_dir = repo_root() / "book" if book_dir is None else Path(book_dir)
    src = _mathjax_source()
    if not (src / "tex-chtml.js").is_file():
        raise BookBuildError(f"MathJax is missing at {src}: run `npm ci` in {repo_root()} "
                             "(`make book` does it)")
    dst = book_dir / "_extra" / "mathjax"
    if not (dst / "tex-chtml.js").is_file():
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
    generated = book_dir / "_generated"
    generated.mkdir(exist_ok=True)
    (generated / "scale.md").write_text(scale_statement(built_profile(book_dir)))
    _write_favicon(book_dir / "_extra" / "favicon.ico")  # browsers ask the site's root for one
    plotly_js = _plotly_source()
    if plotly_js is not None:
        (book_dir / "_extra" / "plotly").mkdir(parents=True, exist_ok=True)
        shutil.copy2(plotly_js, book_dir / "_extra" / "plotly" / "plotly.min.js")
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(book_dir), "--path-output",
           str(book_dir)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise BookBuildError(f"jupyter-book build failed:\n{tail}")
    dropped = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "mystnb.unknown_mime_type" in ln
               or "[mystnb.mime_priority]" in ln]
    if dropped:
        raise BookBuildError("the site would drop these outputs (a MIME type Jupyter Book cannot render):\n"
                             + "\n".join(dropped[:10]))
    index = book_dir / "_build" / "html" / "index.html"
    print(f"book built in {time.perf_counter() - start:.1f} s: {index}", file=out)
    return index


def run_pipeline(profile_name: str, *, only: Sequence[str] | None = None, start: str | None = None,
                 force: bool = False, build: bool = True, book_dir: Path | None = None,
                 notebooks_dir: Path | None = None, progress: bool = False,
                 out: TextIO = sys.stdout, overrides: Mapping[str, Any] | None = None) -> list[NotebookResult]:
    """Validate the profile, run the selected notebooks in order, then build the book.

    ``overrides`` (dotted profile keys -> values, see :func:`lsutils.config.load_profile`) are
    handed to every notebook through ``LSUTILS_OVERRIDES``, so that a chapter producing
    upstream work on demand sees the same profile as the notebooks that own it.

    Raises:
        ProfileError: the profile does not exist or does not validate (before any work).
        ValueError: ``only``/``start`` match no notebook.
        NotebookFailed: the first notebook that raised.
        BookBuildError: the site did not build.
    """
    merged = {**active_overrides(), **(overrides or {})}
    profile = load_profile(profile_name, overrides=overrides)
    if merged:
        os.environ[OVERRIDES_ENV] = json.dumps(merged)
        print(f"overrides: {', '.join(f'{k}={v!r}' for k, v in merged.items())}", file=out)
    # One data folder for this process and every kernel it starts: a relative LSUTILS_DATA
    # is resolved here, once, not again against each kernel's working folder.
    os.environ["LSUTILS_DATA"] = str(data_root())
    book_dir = repo_root() / "book" if book_dir is None else Path(book_dir)
    selected = select_notebooks(discover_notebooks(notebooks_dir), only, start)
    print(f"profile {profile.name}: {profile.description}".rstrip(": "), file=out)
    stage_of = {nb: stage for stage, nb in artifacts.STAGES.items()}
    results = []
    for i, nb in enumerate(selected, 1):
        if force and nb.stem in stage_of:
            shutil.rmtree(artifacts.stage_dir(profile.name, stage_of[nb.stem]), ignore_errors=True)
        print(f"[{i}/{len(selected)}] {nb.stem} ...", file=out, flush=True)
        res = run_notebook(nb, profile, book_dir, progress=progress, out=out)
        print(f"[{i}/{len(selected)}] {nb.stem} done in {res.seconds:.1f} s", file=out, flush=True)
        results.append(res)
    if build:
        build_book(book_dir, out=out)
    return results
