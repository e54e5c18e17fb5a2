"""Run every ```python block of one docs page, in order, in one namespace.

Usage (from the test suite, one subprocess per page so Django and logging
set-up in one page cannot leak into another)::

    python tests/docs_examples.py docs/flask.md

Blocks run in a temporary directory holding ``rules.yaml`` (the example rule
file), the repository's ``examples/`` (as ``examples``), and every fenced
block of the page whose info string names a file (```yaml openapi.yaml).
Paths under ``/run/<dir>/`` in a block become paths in the temporary
directory. A few names the snippets take for granted are predefined (a Flask
``app``, ``stable_app``/``canary_app`` WSGI apps, ``executor``,
``get_wsgi_application``, ...). The Django page runs against the example
project in ``examples/django_project``.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import typing as t
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def hello(environ: t.Any, start_response: t.Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def main(page: str) -> int:
    text = Path(page).read_text(encoding="utf-8")
    fences = re.findall(r"```([^\n]*)\n(.*?)```", text, re.S)
    blocks = [code for info, code in fences if info.split()[:1] == ["python"] and len(info.split()) == 1]
    workdir = tempfile.mkdtemp(prefix="graywsgi-docs-")
    try:
        os.chdir(workdir)
        shutil.copy(ROOT / "examples" / "rules.yaml", "rules.yaml")
        shutil.copytree(ROOT / "examples", "examples")
        for info, code in fences:
            parts = info.split()
            if len(parts) == 2 and "." in parts[1]:
                Path(parts[1]).write_text(code, encoding="utf-8")
        sys.path[:0] = [str(ROOT), str(ROOT / "examples" / "django_project")]
        from flask import Flask

        namespace: dict[str, t.Any] = {
            "__name__": "docs_example",
            "app": Flask("docs_example"),
            "stable_app": hello,
            "canary_app": hello,
            "get_wsgi_application": lambda: hello,  # Django's, for framework-neutral snippets
            "executor": ThreadPoolExecutor(max_workers=1),
            "send_audit_event": lambda *args: None,
            "notify": lambda *args: None,
            "order_id": 42,
            "BASE_DIR": Path(workdir),
        }
        for number, code in enumerate(blocks, 1):
            code = re.sub(r"/run/[A-Za-z0-9_-]+/", workdir + "/", code)
            try:
                exec(compile(code, f"{page} block {number}", "exec"), namespace)
            except Exception as exc:
                print(f"{page}: python block {number} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                print(code, file=sys.stderr)
                return 1
        print(f"{page}: {len(blocks)} python blocks ran")
        return 0
    finally:
        os.chdir(ROOT)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
