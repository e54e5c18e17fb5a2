"""The compiled fast path and its plain-Python fallback (graywsgi/speedups.py).

The suite as a whole runs twice in CI, compiled and with
``GRAYWSGI_PURE_PYTHON=1``; the tests here check what one pass cannot see
alone: that both paths answer every input the same way (tests/speedups_probe.py
run once on each path, answers compared), that the switch and ``--version``
report the path in use, that a machine without a compiler installs and runs
the plain Python, and that the options the compiled code stores in C fields
are refused with graywsgi's own ``ConfigurationError``.
"""

from __future__ import annotations

import importlib.machinery
import json
import math
import os
import shutil
import subprocess
import sys
import typing as t
import zipfile
from pathlib import Path

import pytest

import graywsgi
import graywsgi.speedups as speedups
from graywsgi import CanarySplit, ConfigurationError, Extraction, Metrics, Router
from graywsgi.core.breaker import BreakerPolicy
from graywsgi.layers.guard import Guard
from graywsgi.core.window import LatencyWindow, SlidingWindow

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "tests" / "speedups_probe.py"
IN_CI = os.environ.get("CI") == "true"
PURE_PASS = bool(os.environ.get(speedups.PURE_PYTHON_ENV))


def _extension_files() -> list[Path]:
    """The extension files beside the compiled modules' sources (one per built module)."""
    found = []
    for name in speedups.COMPILED_MODULES:
        stem = ROOT / Path(*name.split("."))
        found += [path for suffix in importlib.machinery.EXTENSION_SUFFIXES
                  if (path := stem.with_suffix(suffix)).exists()][:1]
    return found


#: Whether every compiled module has its extension file beside its source.
BUILT = len(_extension_files()) == len(speedups.COMPILED_MODULES)
needs_extensions = pytest.mark.skipif(
    not BUILT and not IN_CI, reason="the compiled fast path is not built here (no C compiler?)"
)


def _environment(*, pure: bool | str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != speedups.PURE_PYTHON_ENV}
    if pure:
        env[speedups.PURE_PYTHON_ENV] = "1" if pure is True else str(pure)
    env["PYTHONPATH"] = str(ROOT)
    return env


def _python(code: str, *, pure: bool | str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env if env is not None else _environment(pure=pure),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


_STATUS = "import json, graywsgi.speedups as s; print(json.dumps([s.describe(), s.status()]))"


# -- which path is in use --------------------------------------------------


def test_describe_agrees_with_status() -> None:
    found = speedups.status()
    assert set(found) == set(speedups.COMPILED_MODULES)
    described = speedups.describe()
    if all(found.values()):
        assert described == "compiled fast path" and speedups.compiled()
    elif not any(found.values()):
        assert described.startswith("pure Python") and not speedups.compiled()
    else:
        assert described.startswith("partly compiled") and not speedups.compiled()
        for name, done in found.items():
            assert (name in described) is (not done)


def test_this_pass_runs_the_path_it_asked_for() -> None:
    if PURE_PASS:
        assert speedups.describe() == "pure Python (GRAYWSGI_PURE_PYTHON=1)"
        assert not any(speedups.status().values())
        import graywsgi.layers.pipeline

        assert graywsgi.layers.pipeline.__file__.endswith(".py")
    elif IN_CI:
        # CI installs with `pip install -e ".[dev]"` on a machine with gcc:
        # the fast path must have been built, or the budgets measure nothing.
        assert speedups.compiled(), speedups.describe()
    elif not BUILT:
        pytest.skip("the compiled fast path is not built here")
    else:
        assert speedups.compiled(), speedups.describe()


@pytest.mark.parametrize("value", ["1", "true", "yes", "TRUE"])
def test_pure_python_env_forces_every_module_to_source(value: str) -> None:
    described, found = json.loads(_python(_STATUS, pure=value))
    assert described == "pure Python (GRAYWSGI_PURE_PYTHON=1)"
    assert found == {name: False for name in speedups.COMPILED_MODULES}
    files = _python(
        "import importlib, graywsgi.speedups as s; "
        "print('\\n'.join(importlib.import_module(n).__file__ for n in s.COMPILED_MODULES))",
        pure=value,
    ).split()
    assert files and all(name.endswith(".py") for name in files)


@needs_extensions
@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_pure_python_env_off_values_keep_the_compiled_path(value: str) -> None:
    env = _environment(pure=False)
    env[speedups.PURE_PYTHON_ENV] = value
    described, found = json.loads(_python(_STATUS, pure=False, env=env))
    assert described == "compiled fast path"
    assert all(found.values())


@needs_extensions
def test_version_names_the_path_in_use() -> None:
    script = Path(sys.executable).with_name("graywsgi")
    for pure, expected in ((False, "compiled fast path"), (True, "pure Python (GRAYWSGI_PURE_PYTHON=1)")):
        done = subprocess.run(
            [str(script), "--version"], env=_environment(pure=pure), capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"graywsgi {graywsgi.__version__} ({expected})"


# -- both paths answer the same ---------------------------------------------


@pytest.fixture(scope="module")
def probe_answers() -> dict[str, dict[str, t.Any]]:
    """tests/speedups_probe.py's answers on each path: {"compiled": {...}, "pure": {...}}."""
    answers: dict[str, dict[str, t.Any]] = {}
    for label, pure in (("compiled", False), ("pure", True)):
        done = subprocess.run(
            [sys.executable, str(PROBE)],
            cwd=ROOT,
            env=_environment(pure=pure),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        sections = (json.loads(line) for line in done.stdout.splitlines())
        answers[label] = {section["section"]: section["answers"] for section in sections}
    return answers


def _first_difference(left: t.Any, right: t.Any, where: str = "") -> str | None:
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            found = _first_difference(left.get(key), right.get(key), f"{where}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for index, (a, b) in enumerate(zip(left, right)):
            found = _first_difference(a, b, f"{where}[{index}]")
            if found:
                return found
        return None
    return None if left == right else f"{where}: compiled {left!r}, pure {right!r}"


@needs_extensions
def test_probe_ran_each_path(probe_answers: dict[str, dict[str, t.Any]]) -> None:
    assert probe_answers["compiled"]["path"] == "compiled fast path"
    assert probe_answers["pure"]["path"] == "pure Python (GRAYWSGI_PURE_PYTHON=1)"


@needs_extensions
@pytest.mark.parametrize("section", ["code_points", "traceparents", "hosts", "buckets", "decisions"])
def test_both_paths_answer_the_same(probe_answers: dict[str, dict[str, t.Any]], section: str) -> None:
    compiled, pure = probe_answers["compiled"][section], probe_answers["pure"][section]
    assert _first_difference(compiled, pure) is None, _first_difference(compiled, pure)


@needs_extensions
def test_probe_inputs_reach_every_outcome(probe_answers: dict[str, dict[str, t.Any]]) -> None:
    """The generated inputs are varied enough to mean something."""
    answers = probe_answers["compiled"]
    accepted = answers["code_points"]["plain_ascii"]
    assert accepted == list(range(0x20, 0x7F))  # SP .. "~" and nothing else
    assert answers["code_points"]["trimmed"][:4] == ["a", "a", "a", ""]
    traceparents = answers["traceparents"]["traceparent"]
    assert traceparents[0] is True and traceparents.count(False) > 100 and traceparents.count(True) > 10
    placed = answers["code_points"]["plain_ascii_placed"]
    assert placed == [list(range(0x20, 0x7F))] * len(placed)  # every place of a long value alike
    hosts = answers["hosts"]["hosts"]
    assert hosts[:3] == ["shop.example.com", "shop.example.com", ""] and hosts[-1] == "server.example"
    assert "i̇stanbul.example" in hosts  # lower() of "İ" is two code points: the plain rule, not ASCII's
    buckets = answers["buckets"]["bucket_of"]
    assert len(buckets) == 100_000 and set(buckets) == set(range(100))
    for filename, requests in answers["decisions"].items():
        echoed = [json.loads(body) for _, body in requests]
        reasons = {fields[3] for fields in echoed}
        levels = {fields[9] for fields in echoed}
        assert {"color"} <= reasons and len(reasons) >= 3, (filename, reasons)
        assert levels == {"NONE", "L1", "L2"}, (filename, levels)
        assert len({fields[0] for fields in echoed}) >= 2, filename


# -- graywsgi's errors, not a C conversion's --------------------------------


def _app(environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b""]


_HUGE = 10**30

BAD_OPTIONS: list[tuple[str, t.Callable[[], object]]] = [
    ("max_length", lambda: Extraction(_app, max_length=_HUGE)),
    ("max_length", lambda: Extraction(_app, max_length="64")),  # type: ignore[arg-type]
    ("max_length", lambda: Extraction(_app, max_length=2**63)),
    ("max_udp_size", lambda: Metrics(_app, max_udp_size=_HUGE)),
    ("max_udp_size", lambda: Metrics(_app, max_udp_size=65_508)),
    ("trace_sample_rate", lambda: Metrics(_app, trace_sample_rate="0.1")),  # type: ignore[arg-type]
    ("trace_sample_rate", lambda: Metrics(_app, trace_sample_rate=math.nan)),
    ("proxy_timeout", lambda: Router(_app, ROOT / "examples" / "rules.yaml", proxy_timeout=math.inf)),
    ("proxy_timeout", lambda: Router(_app, ROOT / "examples" / "rules.yaml", proxy_timeout=True)),
    ("proxy_timeout", lambda: Router(_app, ROOT / "examples" / "rules.yaml", proxy_timeout="5")),  # type: ignore[arg-type]
    ("percent", lambda: CanarySplit(_app, percent=math.nan)),
    ("percent", lambda: CanarySplit(_app, percent="15")),  # type: ignore[arg-type]
    ("buckets", lambda: SlidingWindow(buckets=_HUGE)),
    ("buckets", lambda: LatencyWindow(buckets=2**63)),
    ("bucket_seconds", lambda: SlidingWindow(bucket_seconds=math.inf)),
    ("window_buckets", lambda: BreakerPolicy(window_buckets=_HUGE)),
    ("refuse_when_open", lambda: Guard(refuse_when_open="yes")),  # type: ignore[arg-type]
    ("retry_on_stable", lambda: Guard(retry_on_stable=None)),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("option", "build"), BAD_OPTIONS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD_OPTIONS)])
def test_bad_option_is_a_configuration_error_naming_it(option: str, build: t.Callable[[], object]) -> None:
    with pytest.raises(ConfigurationError, match=option):
        build()


@pytest.mark.parametrize("value", [None, 5, "gray_id"])
def test_extraction_required_refuses_what_is_not_a_set_of_names(value: object) -> None:
    extraction = Extraction(_app)
    with pytest.raises(ConfigurationError, match="required"):
        extraction.required = value  # type: ignore[assignment]


# -- no compiler: the install still succeeds, plain Python runs -------------


@pytest.mark.skipif(PURE_PASS, reason="builds a wheel; once per CI run is enough")
def test_wheel_built_without_a_compiler_runs_pure_python(tmp_path: Path) -> None:
    source = tmp_path / "src"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.decode().split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    env = {k: v for k, v in os.environ.items() if k not in (speedups.PURE_PYTHON_ENV, "PYTHONPATH")}
    env["CC"] = "false"  # every compile fails, as on a machine without gcc
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path / "dist"), str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "WARNING: graywsgi:" in done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").glob("graywsgi-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "graywsgi/layers/pipeline.py" in names
    assert not [name for name in names if name.endswith((".so", ".pyd"))]
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    env.pop("CC")
    env["PYTHONPATH"] = str(unpacked)
    out = _python(
        "import graywsgi, graywsgi.speedups as s; from graywsgi.core.hashing import bucket_of; "
        "print(graywsgi.__file__); print(s.describe()); print(bucket_of(b'user-42'))",
        pure=False,
        cwd=tmp_path,
        env=env,
    ).splitlines()
    assert out[0].startswith(str(unpacked))
    assert out[1:] == ["pure Python", "99"]


# -- how the extensions are built ------------------------------------------


def _plt_calls(extension: Path) -> set[str]:
    """The functions ``extension``'s code calls or jumps to through a PLT stub."""
    listing = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(extension)], capture_output=True, text=True, check=True,
        timeout=120,
    ).stdout
    assert f"<PyInit_{extension.name.split('.')[0]}>:" in listing  # the module's code was read
    return {line.rsplit("<", 1)[1].rstrip(">") for line in listing.splitlines()
            if "@plt>" in line and ("call" in line or "jmp" in line) and not line.rstrip().endswith(":")}


@needs_extensions
@pytest.mark.skipif(PURE_PASS, reason="reads the compiled extensions")
@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("objdump") is None,
                    reason="setup.py adds -fno-plt on Linux; objdump (binutils) reads the result")
def test_extensions_call_cpython_without_plt_stubs() -> None:
    # setup.py compiles with -fno-plt: a call into CPython goes through the
    # global offset table, with no stub to fetch (docs/performance.md); built
    # without it, every module calls _Py_Dealloc and the rest through stubs.
    # What may be left is the C runtime's own __cxa_finalize, run at unload.
    extensions = _extension_files()
    assert len(extensions) == len(speedups.COMPILED_MODULES)
    stubs = {path.name: _plt_calls(path) - {"__cxa_finalize@plt"} for path in extensions}
    assert {name: found for name, found in stubs.items() if found} == {}


# -- the profile-guided build (setup.py, graywsgi/_training.py) ---------------


def _producers(extension: Path) -> set[str]:
    """The compilers and flags recorded in ``extension``'s debug information."""
    listing = subprocess.run(
        ["readelf", "--debug-dump=info", str(extension)], capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    return {line.split("):", 1)[-1].split(": ", 1)[-1].strip() for line in listing.splitlines()
            if "DW_AT_producer" in line}


def test_training_run_serves_every_request_it_sends() -> None:
    # What the build's second pass is laid out by: requests that each take
    # the path they were meant to take (the retried canary answers 503, and
    # stable serves the request again).
    from graywsgi import _training

    answered = _training.run(1_000)
    assert answered == {"chain": 700, "streamed": 100, "split": 100, "retried": 100}


def test_training_stacks_route_as_named() -> None:
    from graywsgi import _training
    from graywsgi.rules.decision import Decision

    stacks = _training.stacks()
    environ = _training.environ_for(3)
    assert _training.serve(stacks["chain"], environ) == ("200 OK", b"ok")
    decision = environ["graywsgi.decision"]
    assert isinstance(decision, Decision) and decision.route == "canary"
    environ = _training.environ_for(4)
    assert _training.serve(stacks["retried"], environ) == ("200 OK", b"ok")
    assert environ["graywsgi.decision"].reason == "retried on the default cluster"
    assert _training.serve(stacks["streamed"], _training.environ_for(5)) == ("200 OK", b"ok")


@needs_extensions
@pytest.mark.skipif(PURE_PASS, reason="reads the compiled extensions")
@pytest.mark.skipif(shutil.which("nm") is None, reason="nm (binutils) reads the symbols")
def test_no_counting_module_stays_installed() -> None:
    # The first pass of the profile-guided build counts every branch into
    # files under build/; the second replaces those modules. One left behind
    # would write its counts at every exit.
    for extension in _extension_files():
        symbols = subprocess.run(["nm", str(extension)], capture_output=True, text=True, check=True,
                                 timeout=120).stdout
        assert "__gcov_" not in symbols, extension.name


@needs_extensions
@pytest.mark.skipif(PURE_PASS, reason="reads the compiled extensions")
@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("readelf") is None,
                    reason="setup.py builds profile-guided with GCC on Linux; readelf reads the flags")
@pytest.mark.skipif(os.environ.get("GRAYWSGI_PROFILE_GUIDED", "").strip() == "0",
                    reason="GRAYWSGI_PROFILE_GUIDED=0: built without a profile")
def test_gcc_builds_are_laid_out_by_the_training_profile() -> None:
    extensions = _extension_files()
    producers = {path.name: _producers(path) for path in extensions}
    if not any(p.startswith("GNU C") for found in producers.values() for p in found):
        pytest.skip("not built by GCC")
    assert {name: sorted(found) for name, found in producers.items()
            if not any("-fprofile-use=" in p and "-fprofile-partial-training" in p for p in found)} == {}


def test_build_requirements_hold_what_importing_graywsgi_needs() -> None:
    # The profile-guided build imports graywsgi between its two passes, in
    # pip's isolated build environment: every requirement of graywsgi that an
    # import of the training module loads must be a build requirement too.
    import tomllib
    from importlib.metadata import packages_distributions, requires

    def name(requirement: str) -> str:
        return requirement.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].split("!")[0] \
            .strip().lower().replace("_", "-")

    build = {name(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]}
    runtime = {name(r) for r in requires("graywsgi") or [] if "extra ==" not in r}
    loaded = json.loads(_python(
        "import json, sys, graywsgi._training; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))",
        pure=False,
    ))
    distributions = packages_distributions()
    imported = {name(dist) for module in loaded for dist in distributions.get(module, [])}
    assert runtime & imported, "no requirement of graywsgi was imported: the check reads nothing"
    assert (runtime & imported) - build == set()
