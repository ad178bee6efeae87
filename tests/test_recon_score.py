"""Centre scores of trial slices: exact projections of a Shepp-Logan phantom
about a known axis (130.3 px), reconstructed with candidate centres; the
best-scored candidate must be the one nearest the truth."""

import numpy as np
import pytest

from scintomo.exceptions import NonFiniteError, ParameterError, ShapeError
from scintomo.recon import CenterScores, reconstruct, score_centers
from scintomo.simulate import ellipse_projections, shepp_logan_ellipses

N, TRUE_CENTER = 256, 130.3
THETA = np.linspace(0, np.pi, 361, endpoint=False)
CANDIDATES = TRUE_CENTER + np.arange(-5, 5.01, 0.5)


@pytest.fixture(scope="module")
def sino():
    return ellipse_projections(shepp_logan_ellipses(N), THETA, N, center=TRUE_CENTER)


def _slices(sino, noise, seed=0):
    rng = np.random.default_rng(seed)
    p = (sino + noise * rng.standard_normal(sino.shape)).astype(np.float32)
    return np.stack([np.asarray(reconstruct(p, THETA, center=c)) for c in CANDIDATES])


@pytest.mark.parametrize(
    ("metric", "noise"),
    [("negativity", 0.0), ("negativity", 1.0), ("negativity", 4.0), ("total_variation", 0.0),
     ("total_variation", 1.0)],
)  # fmt: skip
def test_best_score_at_the_true_centre(sino, metric, noise):
    # projections peak at ~61: noise 1 and 4 are SNR ~60 and ~15 at the peak
    slices = _slices(sino, noise)
    before = slices.copy()
    r = score_centers(slices, CANDIDATES, metric=metric)
    np.testing.assert_array_equal(slices, before)
    assert isinstance(r, CenterScores)
    assert r.best_center == pytest.approx(TRUE_CENTER, abs=0.01)
    assert not r.at_edge
    score = getattr(r, metric)
    # 2 px off or more scores clearly worse than the best
    far = np.abs(CANDIDATES - TRUE_CENTER) >= 2
    assert np.all(score[far] > score[r.best_index] * 1.001)


def test_scores_flag_a_range_that_misses_the_centre(sino):
    slices = _slices(sino, 0.0)[:6]  # candidates 125.3 .. 127.8 only
    r = score_centers(slices, CANDIDATES[:6])
    assert r.best_center == pytest.approx(CANDIDATES[5])
    assert r.at_edge
    d = r.to_dict()
    assert d["best_center_px"] == r.best_center and d["at_edge"] is True
    # a generator of slices gives the same scores
    g = score_centers((s for s in slices), CANDIDATES[:6])
    np.testing.assert_array_equal(g.negativity, r.negativity)
    np.testing.assert_array_equal(g.total_variation, r.total_variation)


def test_score_errors():
    with pytest.raises(ShapeError):
        score_centers(np.zeros((2, 8, 8)), [1.0])
    with pytest.raises(ShapeError):
        score_centers(np.zeros((8, 8)), [1.0])
    with pytest.raises(ShapeError):
        score_centers([np.zeros(8)], [1.0])
    with pytest.raises(ParameterError):
        score_centers(np.zeros((1, 8, 8)), [1.0], metric="entropy")
    with pytest.raises(NonFiniteError):
        score_centers(np.full((1, 8, 8), np.nan), [1.0])
    r = score_centers(np.zeros((2, 8, 8)), [1.0, 2.0])  # empty slices: no winner by accident
    assert np.all(np.isinf(r.negativity))
