"""Shared fixtures of the core tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def scenario_dir() -> Path:
    """The shared scenario files (`SENDGATE_SCENARIOS` overrides REPO/../shared/scenarios)."""
    return Path(os.environ.get("SENDGATE_SCENARIOS", REPO.parent / "shared" / "scenarios"))
