"""Flat-field correction against a plain numpy reference, and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import shared_file
from scintomo import flatfield as ff
from scintomo.exceptions import (
    DTypeError,
    NonFiniteError,
    NumericalError,
    ParameterError,
    ScintomoWarning,
    ShapeError,
)


def reference(
    p,
    flats,
    darks,
    *,
    positions=None,
    interp="linear",
    reduce="mean",
    air=None,
    lo=-np.inf,
    hi=np.inf,
    log=False,
    first_index=0,
):
    """The textbook formula, written plainly in float64 numpy."""
    red = np.mean if reduce == "mean" else np.median
    p = np.asarray(p, np.float64)
    two_d = p.ndim == 2
    p = p[None] if two_d else p
    flats = flats if isinstance(flats, list) else [flats]
    fl = [red(np.asarray(f, np.float64).reshape(-1, *p.shape[1:]), axis=0) for f in flats]
    d = (
        0.0
        if darks is None
        else red(np.asarray(darks, np.float64).reshape(-1, *p.shape[1:]), axis=0)
    )
    pos = [0.0] if positions is None else list(positions)
    out = np.empty(p.shape)
    for i in range(p.shape[0]):
        t = first_index + i
        if len(fl) == 1 or t <= pos[0]:
            f = fl[0]
        elif t >= pos[-1]:
            f = fl[-1]
        else:
            k = np.searchsorted(pos, t, side="right") - 1
            w = (t - pos[k]) / (pos[k + 1] - pos[k])
            if interp == "linear":
                f = (1 - w) * fl[k] + w * fl[k + 1]
            else:
                f = fl[k + 1] if w > 0.5 else fl[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (p[i] - d) / (f - d)
        if air is not None:
            r = r / r[air].mean()
        r = np.clip(r, lo, hi)
        out[i] = -np.log(r) if log else r
    return out[0] if two_d else out


def make(rng, shape, dtype, n_flats=4, n_darks=3):
    n, h, w = shape
    hi = 200 if dtype == np.uint8 else 4000
    p = rng.integers(hi // 10, hi, (n, h, w))
    f = rng.integers(int(hi * 0.8), hi, (n_flats, h, w))
    d = rng.integers(0, hi // 20, (n_darks, h, w))
    return p.astype(dtype), f.astype(dtype), d.astype(dtype)


DTYPES = [np.uint16, np.float32, np.float64, np.int32, np.uint8]
SHAPES = [(3, 17, 23), (1, 1, 5), (5, 8, 1), (2, 64, 130)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_numpy_reference(rng, dtype, shape):
    p, f, d = make(rng, shape, dtype)
    out = ff.correct(p, f, d)
    assert out.dtype == np.float32 and out.shape == p.shape
    np.testing.assert_allclose(out, reference(p, f, d), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("reduce", ["mean", "median"])
@pytest.mark.parametrize("n_flats", [1, 4, 5])
def test_reductions(rng, dtype, reduce, n_flats):
    p, f, d = make(rng, (2, 9, 11), dtype, n_flats=n_flats, n_darks=n_flats + 1)
    out = ff.correct(p, f, d, reduce=reduce)
    np.testing.assert_allclose(out, reference(p, f, d, reduce=reduce), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        ff.reduce_frames(f, method=reduce), getattr(np, reduce)(f, axis=0), rtol=1e-6
    )


@pytest.mark.parametrize("interp", ["linear", "nearest"])
@pytest.mark.parametrize("positions", [(-1, 12), (0, 5, 11), (3.5, 7.25)])
def test_several_flat_series(rng, interp, positions):
    n = 12
    p, _, d = make(rng, (n, 6, 10), np.uint16)
    series = [make(rng, (3, 6, 10), np.uint16)[1] + k * 200 for k in range(len(positions))]
    out = ff.correct(p, series, d, flat_positions=positions, interpolation=interp)
    want = reference(p, series, d, positions=positions, interp=interp)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def test_block_by_block_equals_whole(rng):
    p, _, d = make(rng, (10, 5, 7), np.uint16)
    series = [make(rng, (2, 5, 7), np.uint16)[1] + k * 300 for k in range(2)]
    kw = dict(flat_positions=(-1, 10), log=True)
    whole = ff.correct(p, series, d, **kw)
    parts = [ff.correct(p[s : s + 3], series, d, first_index=s, **kw) for s in range(0, 10, 3)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_air_normalisation(rng):
    p, f, d = make(rng, (4, 20, 30), np.float32)
    p[:, :, :5] = f.mean(0)[:, :5] * np.array([0.9, 1.0, 1.1, 1.2])[:, None, None]  # beam varies
    air = np.s_[:, :5]
    out = ff.correct(p, f, d, air=air)
    np.testing.assert_allclose(out, reference(p, f, d, air=air), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, :, :5].mean(axis=(1, 2)), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "kw,ref",
    [
        (dict(log=True), dict(lo=1e-6, log=True)),
        (dict(log=True, clip=(0.05, 0.9)), dict(lo=0.05, hi=0.9, log=True)),
        (dict(cutoff=0.8), dict(hi=0.8)),
        (dict(clip=(0.1, None), cutoff=0.7), dict(lo=0.1, hi=0.7)),
        (dict(clip=(None, 0.5), log=True), dict(lo=1e-6, hi=0.5, log=True)),
    ],
)
def test_clip_cutoff_log(rng, kw, ref):
    p, f, d = make(rng, (3, 16, 40), np.uint16)
    p[0, 0, :5] = 0  # below the dark: negative ratio, clipped before the log
    out, rep = ff.correct(p, f, d, return_report=True, **kw)
    want = reference(p, f, d, **ref)
    np.testing.assert_allclose(out, want, rtol=2e-6, atol=2e-6)
    assert np.isfinite(out).all()
    lo, hi = ref.get("lo", -np.inf), ref.get("hi", np.inf)
    r = reference(p, f, d)
    assert rep.clipped_low == np.count_nonzero(r < lo)
    assert rep.clipped_high == np.count_nonzero(r > hi)


def test_minus_log(rng):
    x = rng.uniform(-0.1, 3.0, (5, 33, 17)).astype(np.float32)
    before = x.copy()
    out = ff.minus_log(x)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(out, -np.log(np.clip(x, 1e-6, None)), rtol=1e-6, atol=1e-6)
    y = x.copy()
    assert ff.minus_log(y, out=y, clip=(0.5, 2.0)) is y
    np.testing.assert_allclose(y, -np.log(np.clip(x, 0.5, 2.0)), rtol=1e-6, atol=1e-6)


def test_log_accuracy_over_the_whole_range():
    # the vectorised log must match libm over every decade a ratio can take
    x = np.geomspace(1e-6, 1e6, 200_001).astype(np.float32)
    out = ff.minus_log(x, clip=(1e-6, None))
    np.testing.assert_allclose(out, -np.log(x.astype(np.float64)), rtol=0, atol=3e-6)


def test_non_contiguous_and_reversed_inputs(rng):
    p, f, d = make(rng, (6, 20, 30), np.uint16)
    pv, fv, dv = p[::2, ::-1, 1::2], np.asfortranarray(f)[:, ::-1, 1::2], d[:, ::-1, 1::2]
    out = ff.correct(pv, fv, dv, log=True)
    np.testing.assert_allclose(out, reference(pv, fv, dv, lo=1e-6, log=True), rtol=1e-5, atol=2e-6)


def test_out_and_inplace(rng):
    p, f, d = make(rng, (4, 12, 9), np.float32)
    want = reference(p, f, d, lo=1e-6, log=True)
    out = np.full(p.shape, -7.0, np.float32)
    assert ff.correct(p, f, d, log=True, out=out) is out
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=2e-6)
    # a strided out array
    big = np.zeros((4, 12, 18), np.float32)
    ff.correct(p, f, d, log=True, out=big[:, :, ::2])
    np.testing.assert_allclose(big[:, :, ::2], want, rtol=1e-5, atol=2e-6)
    assert not big[:, :, 1::2].any()
    # in place
    q = p.copy()
    assert ff.correct(q, f, d, log=True, out=q) is q
    np.testing.assert_allclose(q, want, rtol=1e-5, atol=2e-6)


def test_inputs_never_modified(rng):
    p, f, d = make(rng, (3, 8, 8), np.float32)
    copies = [a.copy() for a in (p, f, d)]
    ff.correct(p, f, d, log=True, air=np.s_[:, :2])
    for a, c in zip((p, f, d), copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_single_image_and_no_darks(rng):
    p, f, _ = make(rng, (1, 10, 12), np.uint16)
    out = ff.correct(p[0], f, None)
    assert out.shape == (10, 12)
    np.testing.assert_allclose(out, reference(p[0], f, None), rtol=1e-5)


def test_thread_counts_give_identical_results(rng):
    p, f, d = make(rng, (7, 33, 65), np.uint16)
    a = ff.correct(p, f, d, log=True, n_threads=1)
    b = ff.correct(p, f, d, log=True, n_threads=2)
    c = ff.correct(p, f, d, log=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


# --- bad pixels and bad input -------------------------------------------------------------


def test_dead_pixels_fill_policy_reports_and_warns(rng):
    p, f, d = make(rng, (3, 10, 10), np.uint16)
    f[:, 2, 3] = d.mean(0)[2, 3]  # flat == dark: a dead pixel
    f[:, 7, 1] = 0
    with pytest.warns(ScintomoWarning, match="2 pixel"):
        out, rep = ff.correct(p, f, d, log=True, return_report=True)
    assert rep.bad_pixels == 2 and rep.bad_flat == "fill"
    assert np.isfinite(out).all()
    assert out[:, 2, 3] == pytest.approx(0.0) and out[:, 7, 1] == pytest.approx(0.0)
    good = np.ones((10, 10), bool)
    good[2, 3] = good[7, 1] = False
    np.testing.assert_allclose(
        out[:, good], reference(p, f, d, lo=1e-6, log=True)[:, good], rtol=1e-5, atol=2e-6
    )


def test_dead_pixel_policies(rng):
    p, f, d = make(rng, (2, 6, 6), np.uint16)
    f[:, 1, 1] = 0
    with pytest.warns(ScintomoWarning):
        nan = ff.correct(p, f, d, bad_flat="nan")
    assert (
        np.isnan(nan[:, 1, 1]).all() and np.isfinite(np.delete(nan.reshape(2, -1), 7, axis=1)).all()
    )
    with pytest.warns(ScintomoWarning):
        clamp = ff.correct(p, f, d, bad_flat="clamp", eps=0.5)
    dmean = d.mean(0)[1, 1]
    np.testing.assert_allclose(clamp[:, 1, 1], (p[:, 1, 1] - dmean) / 0.5, rtol=1e-5)
    with pytest.raises(NumericalError, match="1 pixel"):
        ff.correct(p, f, d, bad_flat="raise")


@pytest.mark.parametrize("what", ["flats", "darks"])
def test_nonfinite_flats_or_darks_say_how_many(rng, what):
    p, f, d = make(rng, (2, 5, 5), np.float32)
    arr = f if what == "flats" else d
    arr[0, 0, 0] = np.nan
    arr[1, 2, 2] = np.inf
    with pytest.raises(NonFiniteError, match=f"{what} contain 2 non-finite"):
        ff.correct(p, f, d)


def test_nonfinite_projections_stay_nan_and_are_reported(rng):
    p, f, d = make(rng, (2, 5, 5), np.float32)
    p[1, 3, 3] = np.nan
    with pytest.warns(ScintomoWarning, match="1 non-finite"):
        out, rep = ff.correct(p, f, d, log=True, return_report=True)
    assert rep.nonfinite == 1 and np.isnan(out[1, 3, 3]) and np.isfinite(out).sum() == out.size - 1


def test_zero_flats_raise(rng):
    p, _, d = make(rng, (2, 4, 4), np.uint16)
    with pytest.raises(NumericalError, match="every pixel"):
        ff.correct(p, np.zeros((3, 4, 4), np.uint16), d)
    # flats and darks swapped
    f = make(rng, (2, 4, 4), np.uint16)[1]
    with pytest.raises(NumericalError, match="swapped"):
        ff.correct(p, d, f)


@pytest.mark.parametrize(
    "mutate,exc,match",
    [
        (lambda p, f, d: (p, f[:, :-1], d), ShapeError, "flat series 0"),
        (lambda p, f, d: (p, f, d[:, :, :-1]), ShapeError, "darks"),
        (lambda p, f, d: (p[:0], f, d), ShapeError, "empty"),
        (lambda p, f, d: (p, f[:0], d), ShapeError, "empty"),
        (lambda p, f, d: (p, f, d[:0]), ShapeError, "empty"),
        (lambda p, f, d: (p[0, 0], f, d), ShapeError, "shape"),
        (lambda p, f, d: (p.astype(np.complex64), f, d), DTypeError, "complex64"),
        (lambda p, f, d: (p.astype(object), f, d), DTypeError, "object"),
        (lambda p, f, d: (p, [], d), ShapeError, "empty list"),
    ],
)
def test_bad_shapes_and_dtypes(rng, mutate, exc, match):
    p, f, d = make(rng, (2, 6, 7), np.uint16)
    with pytest.raises(exc, match=match):
        ff.correct(*mutate(p, f, d))


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(reduce="mode"), "reduce"),
        (dict(interpolation="cubic"), "interpolation"),
        (dict(bad_flat="ignore"), "bad_flat"),
        (dict(log=True, clip=(0, None)), "positive lower"),
        (dict(clip=(2.0, 1.0)), "lo <= hi"),
        (dict(n_threads=0), "n_threads"),
        (dict(n_threads=1.5), "n_threads"),
        (dict(eps=-1), "eps"),
        (dict(air=np.s_[:, 50:60]), "air region"),
        (dict(air="left"), "pair of slices"),
        (dict(flat_positions=[0, 1]), "flat_positions"),
        (dict(out=np.zeros((2, 6, 7))), "float32"),
        (dict(out=np.zeros((2, 6, 6), np.float32)), "shape"),
        (dict(fill_value=0.0, log=True), "fill value"),
    ],
)
def test_bad_parameters(rng, kw, match):
    p, f, d = make(rng, (2, 6, 7), np.uint16)
    with pytest.raises((ParameterError, ShapeError), match=match):
        ff.correct(p, f, d, **kw)


def test_several_series_need_positions(rng):
    p, f, d = make(rng, (2, 4, 4), np.uint16)
    with pytest.raises(ParameterError, match="flat_positions"):
        ff.correct(p, [f, f], d)
    with pytest.raises(ParameterError, match="increasing"):
        ff.correct(p, [f, f], d, flat_positions=[3, 1])


def test_air_region_without_signal_raises(rng):
    p, f, d = make(rng, (2, 6, 6), np.float32)
    p[1, :, :2] = d.mean(0)[:, :2]  # "air" that is as dark as the darks
    with pytest.raises(NumericalError, match="projection 1"):
        ff.correct(p, f, d, air=np.s_[:, :2])


def test_errors_are_also_builtin_exceptions(rng):
    p, f, d = make(rng, (2, 4, 4), np.uint16)
    with pytest.raises(ValueError):
        ff.correct(p, f[:, :2], d)
    with pytest.raises(TypeError):
        ff.correct(p.astype(complex), f, d)


def test_overlapping_out_is_refused(rng):
    p, f, d = make(rng, (4, 4, 4), np.float32)
    with pytest.raises(ParameterError, match="overlaps"):
        ff.correct(p[1:], f, d, out=p[:-1])


# --- real data --------------------------------------------------------------------------


def test_real_tooth_scan_matches_reference():
    import h5py

    path = shared_file("tooth.h5")
    with h5py.File(path, "r") as h:
        p = h["exchange/data"][()]
        f = h["exchange/data_white"][()]
        d = h["exchange/data_dark"][()]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # real flats have no dead pixels: no warning expected
        out = ff.correct(p, f, d, log=True)
        ratio = ff.correct(p, f, d)
    np.testing.assert_allclose(ratio, reference(p, f, d), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, reference(p, f, d, lo=1e-6, log=True), rtol=1e-5, atol=5e-6)
    # the tooth absorbs in the middle of the detector, air at the edges is ~0 after -log
    assert np.median(out[:, :, :20]) == pytest.approx(0.0, abs=0.1)
    assert out[:, :, 250:400].mean() > 0.3
