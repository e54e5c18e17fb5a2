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
# Every object is documented once, on the page of the module that defines
# it: a package or a module that re-exports names (for the import paths that
# kept working when the package was grouped) does not repeat them.
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
nitpicky = False
intersphinx_mapping: dict[str, tuple[str, None]] = {}
html_theme = "alabaster"
html_static_path: list[str] = []
