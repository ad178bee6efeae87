"""Property-based tests (hypothesis) over the parameters AND the arrays of
every public kernel: each call either returns finite float32 of the right
shape (or a result whose figures are finite) or raises one of the errors a
caller can handle: a :class:`~scintomo.exceptions.ScintomoError`, a
``ValueError`` or a ``MemoryError``. Never a panic, an abort, a hang or a
silent inf/NaN (issue 17).

Each kernel's property runs in its own Python process, so a Rust abort or a
segfault fails that test instead of killing pytest; hypothesis runs with a
fixed seed (``derandomize``) and a bounded number of examples, and the
process has a time limit (a runaway thread start or a hang fails too).
The arrays mix ordinary values with the float32 extremes, zeros, NaN and
infinities; the parameters include out-of-range, huge and negative values.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("hypothesis")

#: Examples per kernel and pass (the whole module stays well under a minute on two
#: busy cores); SCINTOMO_PROPERTY_EXAMPLES raises it for a longer hunt.
EXAMPLES = int(os.environ.get("SCINTOMO_PROPERTY_EXAMPLES", "25"))

HARNESS = """
import math
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scintomo.exceptions import ScintomoError

warnings.simplefilter("ignore")
ALLOWED = (ScintomoError, ValueError, MemoryError)
F32MAX = float(np.finfo(np.float32).max)
SETTINGS = settings(
    max_examples={examples},
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
SPECIAL = [0.0, -1.0, 1e-30, F32MAX, -F32MAX, 0.5 * F32MAX, math.nan, math.inf, -math.inf]


def mostly(good, bad):
    # first pass (GOOD_ONLY): ordinary parameters, so that the calls reach the
    # computation; second pass: the edge cases as well
    return good if GOOD_ONLY else st.one_of(good, bad)


threads = mostly(st.sampled_from([None, 1, 2]), st.sampled_from([-1, 0, 3, 10**6, 10**9]))
dims = st.integers(1, 24)


def _make(shape, seed, mode, special):
    rng = np.random.default_rng(seed)
    if mode <= 2:  # ordinary positive data: an edge, a gradient, noise
        idx = np.indices(shape).astype(np.float64)
        y, x = idx[-2], idx[-1]
        h, w = shape[-2], shape[-1]
        a = [x > w / 2 + 0.1 * (y - h / 2), x / w + y / h, rng.random(shape)][seed % 3]
        a = 0.1 + a + 0.01 * rng.standard_normal(shape)
    elif mode == 3:  # the same near the float32 maximum
        a = (0.9 + 0.1 * rng.random(shape)) * [1e30, 0.25 * F32MAX, F32MAX][seed % 3]
    elif mode == 4:  # one special value in ordinary data
        a = 0.5 + rng.random(shape)
        a.flat[rng.integers(a.size)] = special
    elif mode == 5:  # signed, anything goes
        a = rng.standard_normal(shape) * 10.0 ** rng.integers(-30, 30)
    else:  # constant
        a = np.full(shape, special)
    with np.errstate(all="ignore"):
        return np.asarray(a).astype(np.float32)


def arrays_of(shape):
    # ordinary data, or finite data near the float32 maximum; then anything
    modes = [0, 1, 2, 3] if GOOD_ONLY else [0, 1, 2, 3, 4, 5, 6]
    return st.tuples(shape, st.integers(0, 2**16), st.sampled_from(modes),
                     st.sampled_from(SPECIAL)).map(lambda a: _make(*a))


def _edge(a):
    (h, w), deg, level, seed = a
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    d = (x - w / 2) * np.cos(np.radians(deg)) - (y - h / 2) * np.sin(np.radians(deg))
    img = 0.1 + 1.0 / (1.0 + np.exp(-np.clip(d / 0.8, -50, 50)))
    img = (img + 0.005 * rng.standard_normal((h, w))) * level
    return img.astype(np.float32)


#: a slanted edge (2-10 degrees off the columns), sometimes near the float32 maximum
edge_image = st.tuples(st.tuples(st.integers(16, 64), st.integers(16, 64)),
                       st.floats(2.0, 10.0), mostly(st.just(1.0), st.sampled_from(
                           [1e30, 0.25 * F32MAX, 0.5 * F32MAX])),
                       st.integers(0, 99)).map(_edge)


def image(h=dims, w=dims):
    return arrays_of(st.tuples(h, w))


def stack(n=st.integers(1, 3), h=dims, w=dims):
    return arrays_of(st.tuples(n, h, w))


def is_finite_f32(a, shape=None):
    a = np.asarray(a)
    assert a.dtype == np.float32, a.dtype
    if shape is not None:
        assert a.shape == tuple(shape), (a.shape, shape)
    assert np.all(np.isfinite(a)), "non-finite values returned silently"


def finite_fields(obj, *names):
    for n in names:
        v = np.asarray(getattr(obj, n), dtype=np.float64)
        assert np.all(np.isfinite(v)), f"{{n}} has non-finite values"


STATS = {{"returned": 0, "refused": 0}}


def outcome(fn):
    try:
        r = fn()
    except ALLOWED:
        STATS["refused"] += 1
        return None
    STATS["returned"] += 1
    return r


def report():
    print("STATS", int(GOOD_ONLY), STATS["returned"], STATS["refused"])
"""

CASES: dict[str, str] = {}

CASES["flatfield.correct"] = """
from scintomo import flatfield

shape = st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12))

@SETTINGS
@given(shape.flatmap(lambda s: st.tuples(
           arrays_of(st.just(s)), arrays_of(st.just(s)),
           mostly(st.none(), arrays_of(st.just(s))))),
       mostly(st.just("mean"), st.sampled_from(["median", "bogus"])),
       mostly(st.just(1e-6), st.sampled_from([0.0, -1.0, 1e30, math.nan])),
       mostly(st.sampled_from(["fill", "clamp"]), st.sampled_from(["raise", "bogus"])),
       st.booleans(), threads)
def prop(pfd, reduce, eps, bad, log, nt):
    p, f, d = pfd
    r = outcome(lambda: flatfield.correct(p, f, d, reduce=reduce, eps=eps, bad_flat=bad,
                                          log=log, n_threads=nt, return_report=True))
    if r is not None:
        out, rep = r
        assert out.dtype == np.float32 and out.shape == p.shape
        # non-finite output only where the report counts (and warns about) it
        assert rep.nonfinite == np.count_nonzero(~np.isfinite(out)), rep

prop()
report()
"""

CASES["deconv.richardson_lucy"] = """
from scintomo import deconv

psfs = st.tuples(st.integers(1, 7), st.integers(1, 7)).flatmap(
    lambda s: mostly(st.just(np.ones(s, np.float32)), arrays_of(st.just(s))))

@SETTINGS
@given(mostly(image(), stack()), psfs,
       mostly(st.integers(1, 4), st.sampled_from([0, -1, 2.5])),
       mostly(st.just("padded"), st.just("zero")),
       mostly(st.sampled_from([0.0, 0.01]), st.sampled_from([0.6, -1.0, math.nan])),
       st.booleans(), threads)
def prop(img, psf, it, boundary, tv, acc, nt):
    if boundary == "zero":
        tv, acc = 0.0, False
    r = outcome(lambda: deconv.richardson_lucy(img, psf, iterations=it, boundary=boundary,
                                               tv=tv, accelerate=acc, n_threads=nt))
    if r is not None:
        assert it >= 1
        is_finite_f32(r, img.shape)

prop()
report()
"""

CASES["deconv.wiener"] = """
from scintomo import deconv

psfs = st.tuples(st.integers(1, 7), st.integers(1, 7)).flatmap(
    lambda s: mostly(st.just(np.ones(s, np.float32)), arrays_of(st.just(s))))

@SETTINGS
@given(mostly(image(), stack()), psfs,
       mostly(st.sampled_from([None, 1e-3, 1.0]), st.sampled_from([0.0, -1.0, math.inf])),
       st.sampled_from(["reflect", "periodic"]),
       mostly(st.one_of(st.none(), st.integers(0, 30)),
              st.sampled_from([-2, 10**7, (3, 10**9), (1, 2, 3)])), threads)
def prop(img, psf, balance, boundary, pad, nt):
    r = outcome(lambda: deconv.wiener(img, psf, balance=balance, boundary=boundary, pad=pad,
                                      n_threads=nt))
    if r is not None:
        is_finite_f32(r, img.shape)

prop()
report()
"""

CASES["psf.model"] = """
from scintomo import psf

lengths = mostly(st.floats(0.05, 30.0),
                 st.sampled_from([0.0, -1.0, 1e-200, 1e6, 1e200, math.inf, math.nan]))

@SETTINGS
@given(lengths, st.sampled_from(["exponential", "lorentzian"]), lengths,
       mostly(st.sampled_from([0.0, 0.3, 1.0]), st.sampled_from([1.5, -0.1])),
       mostly(st.floats(0.1, 5.0), st.sampled_from([0.0, -1.0, 1e-300, 1e300])),
       mostly(st.sampled_from([None, 1, 3, 31]), st.sampled_from([4, -1, 10**6, 10**9])),
       mostly(st.sampled_from([1, 3, 7]), st.sampled_from([0, -1])))
def prop(sigma, tail, tail_um, w, px, size, o):
    r = outcome(lambda: psf.model(sigma_um=sigma, tail=tail, tail_um=tail_um, tail_weight=w,
                                  pixel_size_um=px, size=size, oversample=o))
    if r is not None:
        is_finite_f32(r.array)
        assert r.array.shape[0] == r.array.shape[1] and r.array.shape[0] % 2 == 1
        assert abs(float(r.array.sum(dtype=np.float64)) - 1.0) < 1e-4

prop()
report()
"""

CASES["psf.from_edge"] = """
from scintomo import psf

@SETTINGS
@given(mostly(edge_image, image(st.integers(4, 48), st.integers(8, 48))),
       mostly(st.sampled_from([1.0, 0.185]), st.sampled_from([1e-30, 1e30, -1.0])),
       mostly(st.sampled_from([None, 3, 15]), st.sampled_from([4, 10**6])),
       st.sampled_from(["exponential", "lorentzian"]), threads)
def prop(img, px, size, tail, nt):
    r = outcome(lambda: psf.from_edge(img, pixel_size_um=px, size=size, tail=tail, warn=False,
                                      n_threads=nt))
    if r is not None:
        is_finite_f32(r.array)

prop()
report()
"""

CASES["mtf.edge_mtf"] = """
from scintomo import mtf

@SETTINGS
@given(mostly(edge_image, image(st.integers(4, 48), st.integers(8, 48))),
       mostly(st.sampled_from([1, 2]), st.sampled_from([0, 3])),
       mostly(st.sampled_from([None, 4.0, 8.0]), st.sampled_from([0.0, -1.0, 1e9, math.nan])),
       mostly(st.sampled_from([0, 5]), st.sampled_from([-1, 10**7, 2.5])),
       mostly(st.sampled_from([None, 1.0, "0.185um"]), st.sampled_from([0.0, -1.0, "1e400um"])),
       threads)
def prop(img, order, hw, nb, px, nt):
    r = outcome(lambda: mtf.edge_mtf(img, fit_order=order, half_width_px=hw, n_bootstrap=nb,
                                     pixel_size=px, n_threads=nt))
    if r is not None:
        finite_fields(r, "frequencies", "values")

prop()
report()
"""

CASES["mtf.bar_mtf"] = """
from scintomo import mtf

def bars(a):
    (h, w), period, level, special = a
    x = np.arange(w)
    img = np.tile((np.sin(2 * np.pi * (x + 0.25) / period) > 0) * level + 0.1, (h, 1))
    if special is not None:
        img[h // 2, w // 2] = special
    with np.errstate(all="ignore"):
        return img.astype(np.float32), [1.0 / period]

# bars of a known period and that frequency as the group, or anything
bar_cases = st.tuples(st.tuples(st.integers(16, 64), st.integers(24, 64)),
                      st.sampled_from([3.0, 4.0, 6.0, 8.0]),
                      mostly(st.just(1.0), st.sampled_from([1e30, 0.5 * F32MAX, -1.0])),
                      mostly(st.none(), st.sampled_from(SPECIAL))).map(bars)
other_cases = st.tuples(image(st.integers(4, 40), st.integers(4, 40)),
                        st.sampled_from([None, [0.25], [1e9], [-1.0], [math.nan]]))

@SETTINGS
@given(mostly(bar_cases, other_cases),
       mostly(st.just(0.2), st.sampled_from([0.0, 2.0, -1.0])),
       mostly(st.sampled_from(["mtf", "ctf"]), st.just("bogus")), threads)
def prop(case, thr, basis, nt):
    img, groups = case
    r = outcome(lambda: mtf.bar_mtf(img, groups=groups, threshold=thr, basis=basis,
                                    n_threads=nt))
    if r is not None:
        finite_fields(r, "frequencies", "ctf", "michelson", "mtf")

prop()
report()
"""

CASES["recon.reconstruct"] = """
from scintomo import recon

@SETTINGS
@given(stack(st.integers(1, 12), st.integers(1, 2), st.integers(2, 24)),
       st.sampled_from(["gridrec", "fbp"]),
       mostly(st.one_of(st.none(), st.floats(0.0, 1.0)),
              st.one_of(st.floats(-400, 400), st.sampled_from([1e300, -0.5, math.nan]))),
       mostly(st.one_of(st.none(), st.integers(1, 40)), st.sampled_from([0, -1, 200000, 2.5])),
       mostly(st.sampled_from([True, False, 30]), st.sampled_from([1, 10**6, -3])),
       mostly(st.sampled_from([True, False, 0.5]), st.sampled_from([-1.0, math.nan])),
       mostly(st.sampled_from(["shepp", "ramp", "hann"]), st.just("bogus")),
       mostly(st.just(4), st.sampled_from([0, 1, 17, 10**6])), threads)
def prop(p, alg, c, n_out, pad, mask, filt, kw, nt):
    th = np.linspace(0, np.pi, p.shape[0], endpoint=False)
    if c is not None and 0 <= c <= 1:
        c = c * (p.shape[2] - 1)  # anywhere on the detector
    r = outcome(lambda: recon.reconstruct(p, th, center=c, algorithm=alg, backend="builtin",
                                          n_out=n_out, pad=pad, mask=mask, filter=filt,
                                          kernel_width=kw, n_threads=nt))
    if r is not None:
        n = p.shape[2] if n_out is None else n_out
        is_finite_f32(r, (p.shape[1], n, n))
        if c is not None:
            assert 0 <= c <= p.shape[2] - 1, c

prop()
report()
"""

CASES["recon.find_center"] = """
from scintomo import recon

@SETTINGS
@given(stack(st.integers(8, 40), st.integers(1, 2), st.integers(14, 40)),
       st.sampled_from(["vo", "pc"]),
       mostly(st.one_of(st.none(), st.tuples(st.floats(-50, 30), st.floats(10, 100))),
              st.tuples(st.floats(-300, 300), st.floats(-300, 300))),
       mostly(st.just(0.5), st.sampled_from([0.0, 2.0, math.nan])))
def prop(p, method, rng, ratio):
    th = np.linspace(0, 2 * np.pi, p.shape[0], endpoint=False)
    r = outcome(lambda: recon.find_center(p, th, method=method, search_range=rng, ratio=ratio))
    if r is not None:
        assert np.isfinite(r) and 0 <= r <= p.shape[2] - 1, r

prop()
report()
"""

CASES["recon.remove_stripes"] = """
from scintomo import recon

@SETTINGS
@given(stack(st.integers(1, 16), st.integers(1, 2), st.integers(2, 24)),
       mostly(st.sampled_from(["all", "sort", "filter", "large", "dead", "fw"]),
              st.just("bogus")),
       mostly(st.just(3.0), st.sampled_from([0.0, -1.0, 1e30])),
       mostly(st.sampled_from([61, 5]), st.sampled_from([1, 2, 0, 10**6, 10**9 + 1])),
       mostly(st.sampled_from([21, 3]), st.sampled_from([0, -5, 2])),
       mostly(st.sampled_from([4, 1]), st.sampled_from([0, 60])), threads)
def prop(p, method, snr, la, sm, level, nt):
    r = outcome(lambda: recon.remove_stripes(p, method=method, snr=snr, la_size=la,
                                             sm_size=sm, level=level, n_threads=nt))
    if r is not None:
        is_finite_f32(r, p.shape)

prop()
report()
"""

CASES["recon.paganin"] = """
from scintomo import recon

@SETTINGS
@given(stack(st.integers(1, 2), st.integers(2, 16), st.integers(2, 16)),
       mostly(st.just(1.0), st.sampled_from([0.0, -1.0, 1e30])),
       mostly(st.just(10.0), st.sampled_from([0.0, 1e30])),
       mostly(st.just(20.0), st.sampled_from([0.0, 1e-30])),
       mostly(st.just(100.0), st.sampled_from([0.0, 1e30])), st.booleans())
def prop(t, px, dist, energy, db, pad):
    r = outcome(lambda: recon.paganin(t, pixel_size=px, distance=dist, energy=energy,
                                      delta_beta=db, pad=pad))
    if r is not None:
        is_finite_f32(r, t.shape)

prop()
report()
"""

CASES["detector.nps"] = """
from scintomo import detector

@SETTINGS
@given(stack(st.integers(1, 2), st.integers(16, 40), st.integers(16, 40)),
       mostly(st.just(10.0), st.sampled_from([0.0, 1e30])),
       mostly(st.sampled_from([16, 8]), st.sampled_from([7, 0, 10**6])),
       mostly(st.sampled_from([0.5, 0.0]), st.sampled_from([1.0, -0.5])),
       mostly(st.sampled_from([0, 1, 2]), st.sampled_from([4, 5, -1])),
       mostly(st.just("frame"), st.just("roi")),
       mostly(st.sampled_from([3, 1]), st.sampled_from([0, 100])), threads)
def prop(f, px, roi, overlap, order, how, lines, nt):
    r = outcome(lambda: detector.nps(f, pixel_size=px, roi=roi, overlap=overlap,
                                     detrend_order=order, detrend=how, n_lines=lines,
                                     n_threads=nt))
    if r is not None:
        finite_fields(r, "frequencies", "horizontal", "vertical", "nnps_2d", "mean_signal")

prop()
report()
"""


@pytest.mark.parametrize("kernel", sorted(CASES))
def test_kernel_properties_in_a_subprocess(kernel):
    src = HARNESS.format(examples=EXAMPLES) + textwrap.dedent(CASES[kernel])
    # the same property twice in one process: ordinary parameters, then all
    script = f"SRC = {src!r}\nfor g in (True, False):\n    exec(SRC, {{'GOOD_ONLY': g}})\n"
    try:
        res = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{kernel}: the property run hung (> 300 s)")
    assert res.returncode == 0, (
        f"{kernel}: exit {res.returncode} (negative: killed by a signal, e.g. an abort)\n"
        + res.stdout[-3000:]
        + res.stderr[-6000:]
    )
    stats = [
        [int(v) for v in line.split()[1:]]
        for line in res.stdout.splitlines()
        if line.startswith("STATS")
    ]
    (_, ok_good, no_good), (_, ok_all, no_all) = stats
    print(f"{kernel}: {ok_good + ok_all} results checked, {no_good + no_all} refusals")
    # the ordinary pass reaches the computation, not only the input checks
    assert ok_good >= EXAMPLES // 4, stats
