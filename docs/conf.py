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
# Every reference to a graywsgi object must resolve (a module moved or split
# leaves no dangling link). Names outside graywsgi -- typing, the standard
# library, third-party types in signatures -- are not in this site.
nitpicky = True
nitpick_ignore_regex = [
    ("py:.*", r"(?!graywsgi\.).*"),  # not graywsgi's
    ("py:.*", r"graywsgi\..*\._\w+"),  # private names (a public class's private base)
    ("py:.*", r"graywsgi\..*\.(P|R|T|V|Headers)"),  # type variables and aliases in signatures
    # Enum members and documented constants of the compiled modules: autodoc reads
    # "#:" comments from the .py source, which a compiled module does not point to.
    ("py:attr", r"graywsgi\.core\.context\.Source\.\w+"),
    ("py:data", r"graywsgi\.layers\.identifiers\.MAX_IDENTIFIER_LENGTH"),
    ("py:data", r"graywsgi\.rules\.routing\.MAX_REGEX_PATH_RULES"),
]
intersphinx_mapping: dict[str, tuple[str, None]] = {}
html_theme = "alabaster"
html_static_path: list[str] = []
