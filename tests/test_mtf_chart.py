"""Every edge of a chart of slanted squares, found and measured (issue 16)."""

import math

import numpy as np
import pytest
from scipy.special import ndtr

from scintomo.exceptions import ParameterError
from scintomo.mtf import chart_mtf, find_edges


def _square_chart(shape, squares, sigma_px, *, noise=0.0, seed=0):
    """Dark squares (yc, xc, side, angle deg) on a bright ground, each an erf of the
    distance to its sides (point-sampled Gaussian blur, exact away from the
    corners: MTF exp(-2 pi^2 sigma^2 f^2)); numpy and scipy only."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.full(shape, 0.9)
    for yc, xc, side, ang in squares:
        a = math.radians(ang)
        u = (x - xc) * math.cos(a) + (y - yc) * math.sin(a)
        v = -(x - xc) * math.sin(a) + (y - yc) * math.cos(a)
        img -= 0.8 * ndtr(-(np.maximum(np.abs(u), np.abs(v)) - side / 2) / sigma_px)
    img += noise * np.random.default_rng(seed).standard_normal(shape)
    return img.astype(np.float32)


def test_every_side_of_two_slanted_squares_is_found_and_measured():
    sigma = 1.2
    truth = math.sqrt(math.log(2) / 2) / (math.pi * sigma)
    im = _square_chart((400, 600), [(200, 150, 160, 5.0), (200, 420, 180, -12.0)], sigma,
                       noise=0.8 / 50)  # fmt: skip
    res = chart_mtf(im, n_bootstrap=0)
    assert len(res) == 8 and len({e.object_index for e in res}) == 2
    tilts = sorted(round(abs(e.mtf.angle_deg)) for e in res)
    assert tilts == [5, 5, 5, 5, 12, 12, 12, 12]
    for e in res:
        assert e.error is None and not e.warnings
        assert abs(e.mtf.mtf50 / truth - 1) < 0.02, (e.roi, e.mtf.mtf50 / truth)
        # the normal (towards the bright ground) is the square's side normal
        assert min(abs((e.normal_deg - a + 45) % 90 - 45) for a in (5, -12)) < 1.0
        r0, r1, c0, c1 = e.roi
        assert 0 <= r0 < r1 <= 400 and 0 <= c0 < c1 <= 600


def test_no_squares_no_edges_and_bad_options():
    flat = 0.5 + 0.01 * np.random.default_rng(0).standard_normal((200, 200))
    assert find_edges(flat) == []
    assert chart_mtf(flat) == []
    with pytest.raises(ParameterError):
        chart_mtf(flat, roi=(0, 10, 0, 10))
    with pytest.raises(ValueError):
        find_edges(np.zeros((3, 4, 5)))
