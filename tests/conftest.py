"""Shared fixtures: the real data folder beside the project."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def shared_file(name: str) -> Path:
    """Path of a file in ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data {name} not found at {path.resolve()} (../shared/data is absent)")
    return path


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(12345)
