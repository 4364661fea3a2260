"""Serve the site's own copies of its scripts: plotly.js only on pages with a plotly figure,
and every other script once.

plotly.min.js is copied by ``lsutils.pipeline.build_book`` from the installed plotly
package into ``_extra/plotly/`` (published at the site's root), so an interactive figure
draws without a request to another host, and pages without one do not load it.
"""

from __future__ import annotations


def _page(app, pagename, templatename, context, doctree):
    # an extension registered twice (sphinx-thebe) would declare its globals twice: a JS error
    seen, unique = set(), []
    for js in context.get("script_files", []):
        key = (str(getattr(js, "filename", js) or ""), str(getattr(js, "attributes", {}).get("body", "")))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    if "script_files" in context:
        context["script_files"][:] = unique
    if "plotly-graph-div" in context.get("body", ""):
        # relative to _static/, as Sphinx resolves script paths: the site's root plotly/ folder
        app.add_js_file("../plotly/plotly.min.js", priority=100)


def setup(app):
    app.connect("html-page-context", _page, priority=900)  # after the extensions that add scripts
    return {"parallel_read_safe": True, "parallel_write_safe": True}
