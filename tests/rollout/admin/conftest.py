"""Fixtures of the graywsgi.rollout.admin tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rollout.admin.helpers import Setup, build


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return build(tmp_path)
