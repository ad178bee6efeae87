"""scintomo._json: one way to write JSON, valid for every reader."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from scintomo._json import dumps, write_json


def test_non_finite_become_null_and_numpy_becomes_plain():
    obj = {
        "nan": float("nan"),
        "inf": np.float32("inf"),
        "arr": np.array([1.0, np.nan, -np.inf], np.float64),
        "ints": np.arange(3, dtype=np.int16),
        "tuple": (np.float64(0.5), np.bool_(True)),
        "path": Path("/a/b"),
        "nested": [{"x": np.float32(math.nan)}],
    }
    back = json.loads(dumps(obj), parse_constant=lambda c: pytest.fail(c))
    assert back == {
        "nan": None,
        "inf": None,
        "arr": [1.0, None, None],
        "ints": [0, 1, 2],
        "tuple": [0.5, True],
        "path": "/a/b",
        "nested": [{"x": None}],
    }
    assert json.dumps(float("nan")) == "NaN"  # what json.dumps alone would have written


def test_write_json_is_atomic(tmp_path):
    p = write_json(tmp_path / "r.json", {"a": np.nan})
    assert json.loads(p.read_text()) == {"a": None}
    assert [q.name for q in tmp_path.iterdir()] == ["r.json"]
