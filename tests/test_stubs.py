"""The hand-written stubs of the Rust extension match what it exports."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

# pyo3 sets __all__ at run time; every other name is checked both ways.
ALLOWLIST = Path(__file__).with_name("stubtest-allowlist.txt")


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_core_stubs_match_extension():
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "scintomo._core", "--allowlist", str(ALLOWLIST)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
