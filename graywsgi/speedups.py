"""
The compiled fast path
======================

The modules that run for every request -- the pipeline, its response object,
the identifier reader, the Router's step, the Guard, the breaker and its
windows, the hash -- are plain Python that Cython compiles into C extensions
when graywsgi is installed (``pip install -e ".[dev]"`` or ``pip install .``
on a machine with a C compiler and the Python headers). Cython reads the same
``.py`` files, with the C types in ``.pxd`` files beside them, so the
compiled modules and the plain ones are one source and behave the same; the
test suite runs against both.

Where no compiler is found (or with ``GRAYWSGI_NO_EXTENSIONS=1`` set while
installing), the build skips the extensions and graywsgi runs as plain
Python, as MarkupSafe does without its speedups.

With GCC on Linux the build is profile-guided: it compiles the modules once
with counters, serves a few thousand requests through them
(``graywsgi/_training.py``), and compiles them again laid out by what the
counters saw, so that the code a request runs takes fewer cache lines
(docs/performance.md). ``GRAYWSGI_PROFILE_GUIDED=0`` while installing
builds in one pass; a failed training run falls back to that, with a
warning.

To run the plain Python although the extensions are built, set
``GRAYWSGI_PURE_PYTHON=1`` in the environment before graywsgi is imported.

Which path is in use::

    $ graywsgi --version
    graywsgi 0.1.0 (compiled fast path)

    >>> import graywsgi.speedups
    >>> graywsgi.speedups.describe() in (
    ...     "compiled fast path", "pure Python", "pure Python (GRAYWSGI_PURE_PYTHON=1)",
    ... ) or graywsgi.speedups.describe().startswith("partly compiled")
    True
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import typing as t

__all__ = ["COMPILED_MODULES", "ENVIRONMENT_VARIABLES", "PURE_PYTHON_ENV", "compiled", "describe", "status"]

#: The modules the build compiles (setup.py reads this tuple).
COMPILED_MODULES = (
    "graywsgi.layers.scope",
    "graywsgi.layers.pipeline",
    "graywsgi.layers.identifiers",
    "graywsgi.layers.extraction_breaker",
    "graywsgi.layers.route_step",
    "graywsgi.metrics.step",
    "graywsgi.layers.guard",
    "graywsgi.core.breaker",
    "graywsgi.core.window",
    "graywsgi.rules.decision",
    "graywsgi.rules.routing",
    "graywsgi.rules.routing_index",
    "graywsgi.core.hashing",
    "graywsgi.state.rule_store",
    "graywsgi.state.rollout_state",
    "graywsgi.httputil.request_ids",
)

#: Set to ``1`` to run the plain Python modules although compiled ones exist.
PURE_PYTHON_ENV = "GRAYWSGI_PURE_PYTHON"
#: Set to ``1`` while installing to build no extension (read by setup.py).
NO_EXTENSIONS_ENV = "GRAYWSGI_NO_EXTENSIONS"
#: Set to ``0`` while installing to build the extensions in one pass,
#: without the training run that lays them out (read by setup.py).
PROFILE_GUIDED_ENV = "GRAYWSGI_PROFILE_GUIDED"
#: The environment variables that choose compiled or plain modules and how
#: they are built; they are not settings (:mod:`graywsgi.contrib` reads
#: ``GRAYWSGI_*`` settings).
ENVIRONMENT_VARIABLES = (PURE_PYTHON_ENV, NO_EXTENSIONS_ENV, PROFILE_GUIDED_ENV)


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Finds the ``.py`` file of a compiled module, ignoring the extension."""

    def find_spec(
        self, fullname: str, path: t.Sequence[str] | None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED_MODULES or not path:
            return None
        filename = os.path.join(path[0], fullname.rpartition(".")[2] + ".py")
        if not os.path.exists(filename):
            return None
        return importlib.util.spec_from_file_location(fullname, filename)


def _pure_python_forced() -> bool:
    return os.environ.get(PURE_PYTHON_ENV, "").strip().lower() not in ("", "0", "false", "no")


if _pure_python_forced() and not any(isinstance(finder, _SourceFirst) for finder in sys.meta_path):
    sys.meta_path.insert(0, _SourceFirst())


def status() -> dict[str, bool]:
    """Each compiled module's name -> whether its compiled form is in use."""
    found = {}
    for name in COMPILED_MODULES:
        module = importlib.import_module(name)
        found[name] = isinstance(getattr(module.__spec__, "loader", None), importlib.machinery.ExtensionFileLoader)
    return found


def compiled() -> bool:
    """Whether every module of the fast path runs compiled."""
    return all(status().values())


def describe() -> str:
    """Which path is in use, in words (for ``graywsgi --version``)."""
    found = status()
    if all(found.values()):
        return "compiled fast path"
    if not any(found.values()):
        return f"pure Python ({PURE_PYTHON_ENV}=1)" if _pure_python_forced() else "pure Python"
    missing = ", ".join(name for name, done in found.items() if not done)
    return f"partly compiled (pure Python: {missing})"
