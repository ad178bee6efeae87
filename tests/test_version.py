"""One version everywhere, and the installed distribution's metadata.

The version is written once, as ``[workspace.package] version`` in Cargo.toml:
maturin puts it into the wheel's metadata and the bindings compile it into
``scintomo._core.__version__``. These tests run against the source tree and,
in CI, against the installed wheel.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import scintomo
from scintomo import _core
from scintomo.cli import main

CARGO_TOML = Path(__file__).resolve().parents[1] / "Cargo.toml"
PYPROJECT = CARGO_TOML.with_name("pyproject.toml")


def test_version_is_the_extension_version_and_the_metadata_version():
    assert scintomo.__version__ == _core.__version__
    # Version() normalises Cargo's semver spelling ("0.2.0-rc.1") to PEP 440 ("0.2.0rc1").
    assert Version(md.version("scintomo")) == Version(scintomo.__version__)


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"scintomo {scintomo.__version__}"


def test_console_script_version():
    script = Path(sys.executable).with_name("scintomo")
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable}")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"scintomo {md.version('scintomo')}"


def test_version_matches_cargo_workspace():
    if not CARGO_TOML.exists():
        pytest.skip(f"no source tree beside the tests ({CARGO_TOML} is absent)")
    with CARGO_TOML.open("rb") as f:
        cargo = tomllib.load(f)["workspace"]["package"]["version"]
    assert Version(scintomo.__version__) == Version(cargo)


def _editable() -> bool:
    text = md.distribution("scintomo").read_text("direct_url.json")
    return bool(text) and json.loads(text).get("dir_info", {}).get("editable", False)


def test_metadata_lists_the_extras():
    if _editable():
        # An editable install's metadata is a snapshot from when it was installed; what it
        # will say is pyproject.toml's (the installed wheel is checked in CI's second stage).
        if not PYPROJECT.exists():
            pytest.skip("editable install without its pyproject.toml")
        with PYPROJECT.open("rb") as f:
            extras = tomllib.load(f)["project"]["optional-dependencies"]
        assert {"dask", "test"} <= set(extras)
        assert all(extras[name] for name in ("dask", "test"))
        return
    meta = md.metadata("scintomo")
    assert {"dask", "test"} <= set(meta.get_all("Provides-Extra") or [])
    reqs = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    for extra in ("dask", "test"):
        assert any(r.marker is not None and r.marker.evaluate({"extra": extra}) for r in reqs), (
            f"the [{extra}] extra installs nothing"
        )
    assert meta["Requires-Python"] == ">=3.11"
