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
import shutil
import subprocess
import sys
import sysconfig
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
    """build_ext that reports a failed compile instead of failing the install,
    and builds profile-guided where it can (:meth:`run`)."""

    def initialize_options(self) -> None:
        super().initialize_options()
        #: Flags of the current pass (profile-guided build), on top of :func:`compile_args`.
        self.pass_flags: list[str] = []
        #: The modules the current pass failed to compile.
        self.failed: list[str] = []

    def run(self) -> None:
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1  # the modules compile independently
        self.compiler_option = self.compiler  # build_ext.run() replaces it with the compiler it made
        try:
            if self.extensions and profile_guided_wanted(self.compiler_name()):
                try:
                    self.run_profile_guided()
                    return
                except Exception as exc:
                    print(f"WARNING: graywsgi: no profile-guided build ({exc}); building without a profile",
                          file=sys.stderr)
                    self.remove_outputs()  # no counting module stays installed, whatever happens next
            self.build_pass([])
        except Exception as exc:  # no compiler at all, for example
            warn(f"the compiled fast path was not built ({exc})")

    def remove_outputs(self) -> None:
        """Delete the compiled modules this command built, in the build
        directory and (built in place) beside their sources."""
        for ext in self.extensions:
            Path(self.build_lib, self.get_ext_filename(ext.name)).unlink(missing_ok=True)
            Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)

    def compiler_name(self) -> str:
        """What the C compiler says of itself (``--version``), or ``""`` if it cannot be asked."""
        compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
        try:
            found = subprocess.run([*compiler.split(), "--version"], capture_output=True, text=True, timeout=60,
                                   check=False)
        except (OSError, subprocess.SubprocessError):
            return ""
        return found.stdout if found.returncode == 0 else ""

    def build_pass(self, flags: list[str]) -> list[str]:
        """Compile and link every module with ``flags`` added (all of them,
        again); the names of those that failed."""
        self.pass_flags = flags
        self.failed = []
        self.force = True
        self.compiler = self.compiler_option
        super().run()
        return self.failed

    def run_profile_guided(self) -> None:
        """Build with counters, serve graywsgi/_training.py's requests, build
        again laid out by the counts (GCC). See docs/dependencies.md."""
        root = HERE if self.inplace else Path(self.build_lib).resolve()
        if not (root / "graywsgi" / "__init__.py").is_file():
            raise RuntimeError(f"no graywsgi package to train in {root}")
        profiles = Path(self.build_temp).resolve() / "profiles"
        shutil.rmtree(profiles, ignore_errors=True)
        # Any failure below ends in the caller's build without a profile, which
        # also replaces counting modules that would otherwise stay installed.
        failed = self.build_pass([f"-fprofile-generate={profiles}", "-fprofile-update=single"])
        if failed:
            raise RuntimeError(f"{', '.join(failed)} did not compile with counters")
        train(root)
        failed = self.build_pass([f"-fprofile-use={profiles}", "-fprofile-partial-training", "-Wno-missing-profile"])
        if failed:
            raise RuntimeError(f"{', '.join(failed)} did not compile with the profile")

    def build_extension(self, ext: Extension) -> None:
        base = getattr(ext, "graywsgi_base_args", None)
        if base is None:
            base = ext.graywsgi_base_args = list(ext.extra_compile_args)  # type: ignore[attr-defined]
        ext.extra_compile_args = [*base, *compile_args(self.compiler.compiler_type, sys.platform), *self.pass_flags]
        ext.extra_link_args = [flag for flag in self.pass_flags if flag.startswith("-fprofile-generate")]
        try:
            super().build_extension(ext)
        except Exception as exc:
            self.failed.append(ext.name)
            warn(f"{ext.name} was not compiled ({exc})")


def profile_guided_wanted(compiler: str) -> bool:
    """Whether to build profile-guided: GCC (``compiler`` is what its
    ``--version`` printed; Clang's profiles take another tool) on Linux,
    unless ``GRAYWSGI_PROFILE_GUIDED=0``."""
    if os.environ.get("GRAYWSGI_PROFILE_GUIDED", "").strip() == "0":
        return False
    return sys.platform.startswith("linux") and "Free Software Foundation" in compiler and "clang" not in compiler


def train(root: Path) -> None:
    """Run ``python -m graywsgi._training`` on the package in ``root``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    env.pop("GRAYWSGI_PURE_PYTHON", None)
    done = subprocess.run([sys.executable, "-m", "graywsgi._training"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the training run failed: {done.stderr.strip()[-500:]}")


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
