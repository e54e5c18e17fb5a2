"""Every ```python block in docs/*.md and README.md runs (tests/docs_examples.py, one page per process)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    p for p in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    if re.search(r"^```python\s*$", p.read_text(), re.M)
]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_examples_run(page: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "docs_examples.py"), str(page)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "python blocks ran" in result.stdout


def test_pages_with_examples_are_found() -> None:
    assert {p.name for p in PAGES} >= {
        "quickstart.md", "flask.md", "django.md", "routing.md", "propagation.md", "README.md",
    }


def fnv1a_32(text: str) -> int:
    """32-bit FNV-1a, written out here so the README's claim is checked against the formula, not graywsgi."""
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def test_readme_flask_example_serves_15_percent_of_users_on_canary() -> None:
    """README.md's Python block builds a Flask app that says who served the request. Its comment: "15 % of
    users (by FNV-1a hash of X-Gray-ID, as the Go gateway does) go canary"; and "`CanarySplit` sends a request
    to canary by explicit colour, or when `fnv1a_32(gray_id) % 100 < percent`"."""
    text = (ROOT / "README.md").read_text("utf-8")
    folded = " ".join(text.split())
    assert "15 % of users (by FNV-1a hash of X-Gray-ID, as the Go gateway does) go canary" in folded
    assert "`CanarySplit` sends a request to canary by explicit colour, or when `fnv1a_32(gray_id) % 100 < percent`" in folded
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert len(blocks) == 1
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(blocks[0], "README.md python block", "exec"), namespace)  # noqa: S102
    client = namespace["app"].test_client()  # type: ignore[attr-defined]
    ids = [f"user-{n}" for n in range(2000)]
    served = {}
    for gray_id in ids:
        response = client.get("/", headers={"X-Gray-ID": gray_id})
        assert response.status_code == 200
        assert response.json["user"] == gray_id
        served[gray_id] = response.json["served_by"]
    assert served == {i: "canary" if fnv1a_32(i) % 100 < 15 else "stable" for i in ids}
    assert abs(sum(route == "canary" for route in served.values()) / len(ids) - 0.15) < 0.01
    stable_user = next(i for i in ids if fnv1a_32(i) % 100 >= 15)
    by_colour = client.get("/", headers={"X-Gray-ID": stable_user, "X-Traffic-Color": "canary"})
    assert by_colour.json == {"served_by": "canary", "user": stable_user}
    assert client.get("/").json == {"served_by": "stable", "user": None}
