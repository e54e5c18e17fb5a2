"""Sphinx configuration: the docs are Markdown (MyST) pages plus the API
reference generated from the package's docstrings."""

from __future__ import annotations

import graywsgi

project = "graywsgi"
author = "The graywsgi authors"
copyright = "2026, The graywsgi authors"
release = graywsgi.__version__
version = graywsgi.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
nitpicky = False
intersphinx_mapping: dict[str, tuple[str, None]] = {}
html_theme = "alabaster"
html_static_path: list[str] = []
# Two modules each define an ``Admission`` for their own breaker; type hints
# in signatures then resolve ambiguously. The pages name them in full.
suppress_warnings = ["myst.xref_missing", "ref.python"]
