"""Builds graywsgi's optional compiled fast path; everything else is in setup.cfg.

setup.cfg cannot declare C extensions, so this file does only that: it asks
Cython (a build requirement, see pyproject.toml) to compile the modules that
``graywsgi/speedups.py`` lists, from the same ``.py`` files the plain Python
path runs, with the C types from the ``.pxd`` files beside them. A machine
without a C compiler, or ``GRAYWSGI_NO_EXTENSIONS=1``, gets the plain Python
package: a failed compile is reported as a warning, never as a failed
install. Why Cython, and why this way: docs/dependencies.md.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def compiled_modules() -> list[str]:
    """``COMPILED_MODULES`` from graywsgi/speedups.py, read without importing graywsgi."""
    tree = ast.parse((HERE / "graywsgi" / "speedups.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "COMPILED_MODULES" for target in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise SystemExit("graywsgi/speedups.py has no COMPILED_MODULES")


def warn(message: str) -> None:
    print(f"WARNING: graywsgi: {message}; graywsgi will run as plain Python", file=sys.stderr)


def compile_args(compiler_type: str, platform: str) -> list[str]:
    """C compiler flags beyond Python's own, for this compiler and platform.

    ``-fno-plt`` (GCC and Clang, ELF platforms): the compiled modules call
    CPython's functions through the global offset table instead of through
    a stub per function, one fewer jump and one fewer cache line per call
    when the caches are cold, as they are in a busy server
    (docs/performance.md, "2026-12-07, morning: a second host, and no call
    stubs").
    """
    if compiler_type == "unix" and platform.startswith("linux"):
        return ["-fno-plt"]
    return []


class OptionalBuildExt(build_ext):
    """build_ext that reports a failed compile instead of failing the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all, for example
            warn(f"the compiled fast path was not built ({exc})")

    def build_extension(self, ext: Extension) -> None:
        ext.extra_compile_args = [*ext.extra_compile_args, *compile_args(self.compiler.compiler_type, sys.platform)]
        try:
            super().build_extension(ext)
        except Exception as exc:
            warn(f"{ext.name} was not compiled ({exc})")


def extensions() -> list[Extension]:
    if os.environ.get("GRAYWSGI_NO_EXTENSIONS", "").strip() not in ("", "0"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        warn("Cython is not installed, so the compiled fast path was not built")
        return []
    modules = [
        Extension(name, [str(Path(*name.split(".")).with_suffix(".py"))]) for name in compiled_modules()
    ]
    return cythonize(
        modules,
        build_dir="build/cython",
        quiet=True,
        compiler_directives={
            "language_level": 3,
            # Types come from the .pxd files only: annotations keep their
            # Python meaning, so the compiled and plain modules accept the same.
            "annotation_typing": False,
            "binding": True,
            # `if cython.compiled:` leaves the other branch unreachable, by design.
            "warn.unreachable": False,
        },
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
