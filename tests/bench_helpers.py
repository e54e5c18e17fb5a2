"""Load a script of ``bench/`` (not a package) as a module, for the tests."""

from __future__ import annotations

import importlib.util
import typing as t
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def load_bench_module(name: str) -> t.Any:
    """``bench/<name>.py``, imported afresh."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
