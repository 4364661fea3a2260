"""What a chapter shows: figures with captions, tables, interactive figures.

One call per figure, table or interactive figure, so that every chapter reads
the same in Jupyter, on Colab and in the book:

* :func:`figure` shows a matplotlib figure and its caption under it (Markdown,
  so Colab readers see it). In the book, :func:`lsutils.pipeline.run_notebook`
  turns the caption into the figure's numbered caption (``mystnb.figure``), its
  name into the label that ``{numref}`` refers to, and ``alt`` into the image's
  alternative text.
* :func:`table` renders rows as a Markdown table through one formatter: headers
  in words with units, one number format per column, no index unless asked for;
  :func:`show_verdicts` shows a paper's claims with their answers and intervals.
* :func:`show_interactive` shows a plotly figure: in the book as HTML without
  plotly.js (the site serves one local copy of it), elsewhere through plotly's
  own renderer (Colab, Jupyter).

Example:
    >>> print(table([{"acc": 95.123, "model": "skip"}], {"model": ("model", "{}"),
    ...                                                  "acc": ("test accuracy (%)", "{:.2f}")}))
    | model | test accuracy (%) |
    |:--|--:|
    | skip | 95.12 |
"""

from __future__ import annotations

import html
import os
import re
from typing import Any, Mapping

__all__ = ["BOOK_ENV", "FIGURE_KEY", "figure", "table", "show_table", "show_interactive", "in_book", "parameters_table",
           "show_verdicts"]

BOOK_ENV = "LSUTILS_BOOK"  # set by the pipeline while it executes a notebook for the book
FIGURE_KEY = "lsutils"  # output metadata: {"lsutils": {"figure": {"name", "caption", "alt"}}}
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def in_book() -> bool:
    """Whether this kernel executes a notebook for the book (the pipeline says so)."""
    return os.environ.get(BOOK_ENV) == "1"


def _check_text(name: str, caption: str, alt: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"name = {name!r} is not a figure label; allowed: lower-case letters, digits and '-', "
                         "starting with a letter (e.g. 'fig-learning-curves')")
    for key, text in (("caption", caption), ("alt", alt)):
        if not text.strip():
            raise ValueError(f"{key} is empty; allowed: a sentence that says what the figure shows")


def figure(fig: Any, name: str, caption: str, alt: str) -> None:
    """Show ``fig`` with its caption; the book numbers it and labels it ``name``.

    Args:
        fig: a matplotlib figure (closed after it is shown, so it is not drawn twice).
        name: the label other text refers to with ``{numref}`name``` (``fig-...``).
        caption: one or two sentences of Markdown: what the figure shows and what to see.
        alt: the alternative text: what the image is, for a reader who cannot see it.
    """
    from IPython.display import Markdown, display
    import matplotlib.pyplot as plt

    _check_text(name, caption, alt)
    display(fig)
    plt.close(fig)
    display(Markdown(f"*Figure.* {caption}"),
            metadata={FIGURE_KEY: {"figure": {"name": name, "caption": caption, "alt": alt}}})


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    try:
        text = fmt.format(value)
    except (ValueError, TypeError):
        text = str(value)
    return text.replace("|", "\\|")


def table(rows: Any, columns: Mapping[str, tuple[str, str]] | None = None, *, index: str | None = None) -> str:
    """Rows as a Markdown table: headers in words, one format per column.

    Args:
        rows: a list of dicts or a pandas DataFrame (its index becomes a column named by
            ``index`` when given).
        columns: ``{key: (header, format)}`` in display order; default: every key, ``{:.4g}``
            for numbers.
        index: for a DataFrame, the header of its index column (omitted when None).

    Numbers are right-aligned, text left-aligned; missing values print as "-".
    """
    if hasattr(rows, "to_dict"):
        frame = rows.reset_index() if index is not None else rows
        if index is not None:
            frame = frame.rename(columns={frame.columns[0]: "__index__"})
            columns = {"__index__": (index, "{}"), **(columns or {c: (str(c), "{:.4g}") for c in rows.columns})}
        rows = frame.to_dict("records")
    rows = list(rows)
    if columns is None:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        columns = {k: (str(k), "{:.4g}") for k in keys}
    missing = [k for k in columns if rows and all(k not in r for r in rows)]
    if missing:
        raise ValueError(f"columns {missing} are in no row; allowed: {sorted({k for r in rows for k in r})}")
    numeric = {k: all(isinstance(r.get(k), (int, float)) or r.get(k) is None for r in rows) for k in columns}
    head = "| " + " | ".join(h for h, _ in columns.values()) + " |"
    rule = "|" + "|".join("--:" if numeric[k] else ":--" for k in columns) + "|"
    body = ["| " + " | ".join(_cell(r.get(k), f) for k, (_, f) in columns.items()) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def show_table(rows: Any, columns: Mapping[str, tuple[str, str]] | None = None, *, index: str | None = None) -> None:
    """Display :func:`table` as Markdown (rendered by Jupyter, Colab and the book)."""
    from IPython.display import Markdown, display

    display(Markdown(table(rows, columns, index=index)))


def show_verdicts(verdicts: Any, *, effect: str = "effect") -> None:
    """Display verdicts (:mod:`lsutils.verdict`) as one table: claim, answer, effect with its
    interval, p-value and the number of values."""
    from IPython.display import Markdown, display

    from .verdict import markdown_table

    display(Markdown(markdown_table(list(verdicts), effect=effect)))


def show_interactive(fig: Any, name: str, caption: str) -> None:
    """Show a plotly figure with its caption: in the book as an HTML ``div`` that the
    site's local plotly.js draws, elsewhere through plotly's renderer."""
    from IPython.display import HTML, Markdown, display

    _check_text(name, caption, caption)
    if in_book():
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=name,
                          config={"displaylogo": False, "responsive": True})
        display(HTML(f'<div class="lsutils-plotly" role="figure" aria-label="{html.escape(caption)}">{div}</div>'))
    else:
        fig.show()
    display(Markdown(f"*Interactive figure.* {caption}"))


def parameters_table(values: Mapping[str, Any], meanings: Mapping[str, str],
                     defaults: Mapping[str, Any] | None = None) -> str:
    """The parameters a chapter ran with, their meaning and (when different) the notebook's default.

    Example:
        >>> print(parameters_table({"epochs": 3}, {"epochs": "training epochs"}, {"epochs": 20}))
        | parameter | value used | meaning |
        |:--|:--|:--|
        | `epochs` | `3` (default `20`) | training epochs |
    """
    rows = []
    for key, value in values.items():
        used = f"`{value!r}`"
        if defaults is not None and key in defaults and defaults[key] != value:
            used += f" (default `{defaults[key]!r}`)"
        rows.append(f"| `{key}` | {used} | {meanings.get(key, '').replace('|', '/')} |")
    return "\n".join(["| parameter | value used | meaning |", "|:--|:--|:--|", *rows])
