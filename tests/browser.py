"""Open every page of a built site in headless Chromium and list what a reader would see wrong.

Used by the browser test (``tests/test_pipeline.py``) and runnable on its own to take
screenshots of a built book::

    python tests/browser.py book/_build/html --shots /tmp/shots --widths 1280 390

Checks per page and width: every formula typeset by MathJax, every image loaded, every
plotly figure drawn, every citation resolved, no request leaving 127.0.0.1, no console
error or uncaught exception, no failed request, no traceback, stderr block, machine path
or progress-bar remnant, no page wider than the window, and one search box.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import shutil
import socketserver
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MACHINE_PATH = re.compile(r"(/tmp/|/home/|/root/|/work/|/usr/lib/|site-packages|[A-Z]:\\\\Users)")
PROGRESS_REMNANT = re.compile(r"\d+%\|[#▏▎▍▌▋▊▉█ ]*\||\d+(\.\d+)?(it|s)/(s|it)\]")


def chromium() -> str | None:
    """The Chromium executable (Debian's ``chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port) while the block runs; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # noqa: D401 - silence the access log
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}/"
        finally:
            httpd.shutdown()


_PAGE_STATE = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const text = document.body.innerText;
  const math = [...document.querySelectorAll('.math')];
  const plots = [...document.querySelectorAll('.plotly-graph-div')];
  const imgs = [...document.querySelectorAll('img')];
  const figs = [...document.querySelectorAll('.cell_output img')];
  return {
    text: text,
    math: math.length,
    untypeset: math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 60)),
    mathErrors: document.querySelectorAll('mjx-merror').length,
    images: imgs.length,
    broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.getAttribute('src') || '').slice(0, 80)),
    noAlt: figs.filter(i => !(i.getAttribute('alt') || '').trim()
                       || /^[0-9a-f]{20,}/.test(i.getAttribute('alt'))).length,
    plots: plots.length,
    undrawn: plots.filter(p => !p.querySelector('.main-svg')).map(p => p.id),
    citations: [...document.querySelectorAll('.bibtex-citation, a.reference.internal')]
      .filter(a => /^\\[\\s*\\??\\s*\\]$/.test(a.textContent.trim())).length,
    emptyBrackets: [...document.querySelectorAll('article p, article li')]
      .filter(e => !e.closest('.cell_output, pre, code') && /\\[\\]/.test(e.textContent)).length,
    stderr: document.querySelectorAll('.output.stderr, .stderr').length,
    overflow: document.scrollingElement.scrollWidth - window.innerWidth,
    figureScale: figs.map(i => i.clientWidth / i.naturalWidth),
    searches: [...document.querySelectorAll('.search-button-field, form.bd-search')]
      .filter(e => e.offsetParent !== null).length,
  };
}"""


def check_site(html: Path, *, widths: tuple[int, ...] = (1280, 390), shots: Path | None = None,
               shoot_all: bool = False, pages: list[str] | None = None) -> tuple[list[str], dict]:
    """Open every page of the site at ``html`` at each width; return the problems and measurements.

    Args:
        html: the built site (``book/_build/html``).
        widths: window widths in CSS pixels.
        shots: a folder for screenshots: of every failing page, or of every page with ``shoot_all``.
        pages: relative paths to open (default: every ``*.html`` but Sphinx's own search page).

    Returns:
        ``(problems, measured)``: one line per problem (page, width, what), and per page and
        width the numbers found (formulas, images, plots, the smallest figure scale).
    """
    from playwright.sync_api import sync_playwright

    html = Path(html)
    pages = pages or sorted(str(p.relative_to(html)) for p in html.rglob("*.html")
                            if p.name not in {"search.html", "genindex.html"} and "_static" not in p.parts)
    problems: list[str] = []
    measured: dict = {}
    with serve(html) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            for width in widths:
                context = browser.new_context(viewport={"width": width, "height": 900})
                for rel in pages:
                    found: list[str] = []
                    page = context.new_page()
                    page.on("request", lambda r, f=found: f.append(f"request to another host: {r.url[:100]}")
                            if urlparse(r.url).hostname not in ("127.0.0.1", None) and
                            not r.url.startswith(("data:", "blob:")) else None)
                    page.on("requestfailed", lambda r, f=found: f.append(f"failed request: {r.url[:100]}"))
                    page.on("response", lambda r, f=found: f.append(f"HTTP {r.status}: {r.url[:100]}")
                            if r.status >= 400 else None)
                    page.on("console", lambda m, f=found: f.append(f"console {m.type}: {m.text[:160]}")
                            if m.type == "error" else None)
                    page.on("pageerror", lambda e, f=found: f.append(f"uncaught exception: {str(e)[:160]}"))
                    page.goto(base + rel, wait_until="load")
                    page.wait_for_load_state("networkidle")
                    if page.locator(".math").count():  # MathJax (deferred) has loaded and typeset
                        try:
                            page.wait_for_function("() => window.MathJax && MathJax.startup && "
                                                   "MathJax.startup.promise", timeout=30_000)
                        except Exception:  # noqa: BLE001 - reported below as untypeset formulas
                            found.append("MathJax did not start within 30 s")
                    state = page.evaluate(_PAGE_STATE)
                    text = state.pop("text")
                    found += [f"formula not typeset: {m!r}" for m in state["untypeset"]]
                    if state["mathErrors"]:
                        found.append(f"{state['mathErrors']} MathJax errors")
                    found += [f"image not loaded: {src}" for src in state["broken"]]
                    if state["noAlt"]:
                        found.append(f"{state['noAlt']} figures without meaningful alt text")
                    found += [f"plotly figure not drawn: {p}" for p in state["undrawn"]]
                    if state["citations"] or state["emptyBrackets"]:
                        found.append("an unresolved citation ('[]' or '[?]')")
                    if state["stderr"]:
                        found.append(f"{state['stderr']} stderr blocks")
                    if "Traceback (most recent call last)" in text:
                        found.append("a traceback")
                    if m := MACHINE_PATH.search(text):
                        found.append(f"a machine path: ...{text[max(0, m.start() - 30):m.end() + 40]!r}")
                    if m := PROGRESS_REMNANT.search(text):
                        found.append(f"a progress-bar remnant: {m.group(0)!r}")
                    if state["searches"] > 1:
                        found.append(f"{state['searches']} search boxes")
                    if state["overflow"] > 1:
                        found.append(f"the page is {state['overflow']} px wider than the window")
                    scale = state.pop("figureScale")
                    measured[rel, width] = {**{k: state[k] for k in ("math", "images", "plots")},
                                            "min_figure_scale": min(scale) if scale else None}
                    problems += [f"{rel} @ {width}px: {f}" for f in found]
                    if shots is not None and (found or shoot_all):
                        shots.mkdir(parents=True, exist_ok=True)
                        name = rel.replace("/", "_").removesuffix(".html")
                        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
                    page.close()
                context.close()
        finally:
            browser.close()
    return problems, measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("--shots", type=Path)
    parser.add_argument("--widths", type=int, nargs="+", default=[1280, 390])
    parser.add_argument("--pages", nargs="+")
    parser.add_argument("--all", action="store_true", help="screenshot every page, not only failing ones")
    args = parser.parse_args()
    problems, measured = check_site(args.html, widths=tuple(args.widths), shots=args.shots,
                                    shoot_all=args.all, pages=args.pages)
    for (rel, width), m in sorted(measured.items()):
        print(f"{rel} @ {width}px: {m}")
    print("\n".join(problems) or "no problems")


if __name__ == "__main__":
    main()
