//! Real-input FFTs of even length n through a complex FFT of length n / 2
//! (rustfft), with the split pass that separates the two half-length
//! transforms vectorised.
//!
//! realfft does the same thing, but its split pass is scalar: for a row of
//! 2160 reals (the 2048-pixel deconvolution grid) the pass takes 1.2 us, more
//! than the 1.1 us of the complex FFT it follows, so realfft's r2c costs as
//! much as a full-length complex FFT. Here the pass runs four pairs (k, N - k)
//! at a time in AVX2 registers (the right-hand block reversed in-register)
//! and costs a fraction of the FFT. Conventions and results are realfft's:
//! r2c gives n / 2 + 1 values, unnormalised; c2r of r2c(x) is n x; the
//! imaginary parts at DC and Nyquist are ignored by c2r. Odd lengths fall
//! back to realfft.

use std::sync::Arc;

use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

/// Forward or inverse real FFT of one length.
pub struct RealFft {
    n: usize,
    kind: Kind,
}

enum Kind {
    Even(Even),
    OddR2c(Arc<dyn RealToComplex<f32>>),
    OddC2r(Arc<dyn ComplexToReal<f32>>),
}

/// Even n: a complex FFT of n / 2 and the split pass.
struct Even {
    fft: Arc<dyn Fft<f32>>,
    /// Interleaved (w.re, w.im) per pair k = 1..=pairs.
    tw1: Vec<f32>,
    /// Interleaved (w.im, -w.re).
    tw2: Vec<f32>,
    avx2: bool,
}

impl Even {
    fn split(&self, x: &mut [Complex32], r2c: bool) {
        split(x, &self.tw1, &self.tw2, self.avx2, r2c);
    }
}

/// Number of (k, N - k) pairs with 0 < k < N - k, for N = n / 2.
fn pairs(half: usize) -> usize {
    half.div_ceil(2).saturating_sub(1)
}

impl RealFft {
    /// r2c of length n (n reals -> n / 2 + 1 complex values).
    pub fn forward(n: usize) -> Self {
        Self::new(n, true)
    }

    /// c2r of length n (n / 2 + 1 complex values -> n reals).
    pub fn inverse(n: usize) -> Self {
        Self::new(n, false)
    }

    fn new(n: usize, forward: bool) -> Self {
        assert!(n >= 1, "empty real FFT");
        if n % 2 == 1 {
            let mut p = RealFftPlanner::<f32>::new();
            let kind = if forward {
                Kind::OddR2c(p.plan_fft_forward(n))
            } else {
                Kind::OddC2r(p.plan_fft_inverse(n))
            };
            return RealFft { n, kind };
        }
        let half = n / 2;
        let mut p = FftPlanner::<f32>::new();
        let fft = if forward {
            p.plan_fft_forward(half)
        } else {
            p.plan_fft_inverse(half)
        };
        // realfft's twiddles: e^{-2 pi i k / n}, halved for r2c, conjugated
        // for c2r.
        let m = pairs(half);
        let (mut tw1, mut tw2) = (Vec::with_capacity(2 * m), Vec::with_capacity(2 * m));
        for k in 1..=m {
            let a = -2.0 * std::f64::consts::PI * k as f64 / n as f64;
            let (re, im) = if forward {
                (0.5 * a.cos(), 0.5 * a.sin())
            } else {
                (a.cos(), -a.sin())
            };
            tw1.extend([re as f32, im as f32]);
            tw2.extend([im as f32, -re as f32]);
        }
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        RealFft {
            n,
            kind: Kind::Even(Even {
                fft,
                tw1,
                tw2,
                avx2,
            }),
        }
    }

    /// Number of complex values on the spectral side.
    pub fn complex_len(&self) -> usize {
        self.n / 2 + 1
    }

    pub fn scratch_len(&self) -> usize {
        match &self.kind {
            Kind::Even(e) => e.fft.get_outofplace_scratch_len(),
            Kind::OddR2c(f) => f.get_scratch_len(),
            Kind::OddC2r(f) => f.get_scratch_len(),
        }
    }

    /// r2c: `input` (n reals, used as scratch) -> `output` (n / 2 + 1).
    pub fn r2c(&self, input: &mut [f32], output: &mut [Complex32], scratch: &mut [Complex32]) {
        assert!(input.len() == self.n && output.len() == self.complex_len());
        match &self.kind {
            Kind::Even(e) => {
                let half = self.n / 2;
                let buf = as_complex(input);
                e.fft
                    .process_outofplace_with_scratch(buf, &mut output[..half], scratch);
                let x0 = output[0];
                output[0] = Complex32::new(x0.re + x0.im, 0.0);
                output[half] = Complex32::new(x0.re - x0.im, 0.0);
                e.split(&mut output[..half], true);
                if half % 2 == 0 {
                    let c = &mut output[half / 2];
                    c.im = -c.im;
                }
            }
            Kind::OddR2c(f) => {
                // Lengths checked above; the only error is a length mismatch.
                let _ = f.process_with_scratch(input, output, scratch);
            }
            Kind::OddC2r(_) => panic!("r2c on an inverse plan"),
        }
    }

    /// c2r: `input` (n / 2 + 1, used as scratch; the imaginary parts at DC
    /// and Nyquist are ignored) -> `output` (n reals).
    pub fn c2r(&self, input: &mut [Complex32], output: &mut [f32], scratch: &mut [Complex32]) {
        assert!(input.len() == self.complex_len() && output.len() == self.n);
        match &self.kind {
            Kind::Even(e) => {
                let half = self.n / 2;
                let (a, b) = (input[0].re, input[half].re);
                input[0] = Complex32::new(a + b, a - b);
                e.split(&mut input[..half], false);
                if half % 2 == 0 {
                    let c = &mut input[half / 2];
                    *c = Complex32::new(2.0 * c.re, -2.0 * c.im);
                }
                let out = as_complex(output);
                e.fft
                    .process_outofplace_with_scratch(&mut input[..half], out, scratch);
            }
            Kind::OddC2r(f) => {
                input[0].im = 0.0;
                let _ = f.process_with_scratch(input, output, scratch);
            }
            Kind::OddR2c(_) => panic!("c2r on a forward plan"),
        }
    }
}

fn as_complex(x: &mut [f32]) -> &mut [Complex32] {
    debug_assert!(x.len() % 2 == 0);
    // SAFETY: Complex32 is repr(C) {re: f32, im: f32}, alignment 4; the
    // length is even.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr() as *mut Complex32, x.len() / 2) }
}

/// The split pass over pairs (k, N - k), k = 1..=pairs(N), of `x` (length
/// N). With s = x_k + x_{N-k}, d = x_k - x_{N-k}, A = (s.re, d.im) and
/// T = (s.im w.re + d.re w.im, s.im w.im - d.re w.re):
/// r2c: x_k = A / 2 + T, x_{N-k} = (s.re / 2 - T.re, T.im - d.im / 2);
/// c2r: x_k = A - T, x_{N-k} = conj(A + T).
fn split(x: &mut [Complex32], tw1: &[f32], tw2: &[f32], avx2: bool, r2c: bool) {
    let n = x.len();
    let m = pairs(n);
    debug_assert!(tw1.len() >= 2 * m);
    let mut k = 1;
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2 and FMA were detected when the plan was made.
        k = unsafe { split_avx2(x, tw1, tw2, r2c) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = avx2;
    while k <= m {
        let (a, b) = (x[k], x[n - k]);
        let (w1, w2) = (
            (tw1[2 * k - 2], tw1[2 * k - 1]),
            (tw2[2 * k - 2], tw2[2 * k - 1]),
        );
        let (s, d) = (a + b, a - b);
        let t = Complex32::new(s.im * w1.0 + d.re * w2.0, s.im * w1.1 + d.re * w2.1);
        if r2c {
            x[k] = Complex32::new(0.5 * s.re + t.re, 0.5 * d.im + t.im);
            x[n - k] = Complex32::new(0.5 * s.re - t.re, t.im - 0.5 * d.im);
        } else {
            x[k] = Complex32::new(s.re - t.re, d.im - t.im);
            x[n - k] = Complex32::new(s.re + t.re, -(d.im + t.im));
        }
        k += 1;
    }
}

/// Four pairs at a time while the left block [k, k + 4) and the right block
/// [N - k - 3, N - k + 1) are both within the pairs; returns the first k
/// left for the scalar loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn split_avx2(x: &mut [Complex32], tw1: &[f32], tw2: &[f32], r2c: bool) -> usize {
    use std::arch::x86_64::*;
    let n = x.len();
    let m = pairs(n);
    let p = x.as_mut_ptr() as *mut f32;
    // Reverse the order of the four complex values in a register.
    #[inline(always)]
    unsafe fn rev(v: __m256) -> __m256 {
        _mm256_permute_ps::<0b0100_1110>(_mm256_permute2f128_ps::<1>(v, v))
    }
    let half = _mm256_set1_ps(0.5);
    // Sign flips: of the real lanes, of the imaginary lanes.
    let neg_re = _mm256_setr_ps(-0.0, 0.0, -0.0, 0.0, -0.0, 0.0, -0.0, 0.0);
    let neg_im = _mm256_setr_ps(0.0, -0.0, 0.0, -0.0, 0.0, -0.0, 0.0, -0.0);
    let mut k = 1;
    while k + 3 <= m {
        let pl = p.add(2 * k);
        let pr = p.add(2 * (n - k - 3));
        let a = _mm256_loadu_ps(pl);
        let b = rev(_mm256_loadu_ps(pr));
        let s = _mm256_add_ps(a, b);
        let d = _mm256_sub_ps(a, b);
        let w1 = _mm256_loadu_ps(tw1.as_ptr().add(2 * k - 2));
        let w2 = _mm256_loadu_ps(tw2.as_ptr().add(2 * k - 2));
        let t = _mm256_fmadd_ps(
            _mm256_movehdup_ps(s),
            w1,
            _mm256_mul_ps(_mm256_moveldup_ps(d), w2),
        );
        let aa = _mm256_blend_ps::<0b1010_1010>(s, d);
        let (l, r) = if r2c {
            // x_k = A / 2 + T; x_{N-k} = (A.re / 2 - T.re, T.im - A.im / 2).
            let l = _mm256_fmadd_ps(aa, half, t);
            let r = _mm256_fmadd_ps(_mm256_xor_ps(aa, neg_im), half, _mm256_xor_ps(t, neg_re));
            (l, r)
        } else {
            // x_k = A - T; x_{N-k} = conj(A + T).
            let l = _mm256_sub_ps(aa, t);
            let r = _mm256_xor_ps(_mm256_add_ps(aa, t), neg_im);
            (l, r)
        };
        _mm256_storeu_ps(pl, l);
        _mm256_storeu_ps(pr, rev(r));
        k += 4;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + 13) % 101) as f32 / 50.0 - 1.0)
            .collect()
    }

    /// Agrees with realfft (an independent implementation of the same
    /// conventions) in both directions, for lengths with every remainder
    /// mod 8 and sizes around the vector loop's edges, on both code paths.
    #[test]
    fn matches_realfft() {
        let lens = [
            1usize, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 18, 20, 22, 26, 30, 34, 64, 90, 2046, 2160,
        ];
        for &n in &lens {
            let mut rp = RealFftPlanner::<f32>::new();
            let (rf, ri) = (rp.plan_fft_forward(n), rp.plan_fft_inverse(n));
            let x = signal(n);
            let mut want = rf.make_output_vec();
            rf.process(&mut x.clone(), &mut want).unwrap();
            for avx in [false, true] {
                let f = RealFft::forward(n);
                let i = RealFft::inverse(n);
                let (f, i) = (force(f, avx), force(i, avx));
                let mut got = vec![Complex32::new(0.0, 0.0); f.complex_len()];
                let mut sc = vec![Complex32::new(0.0, 0.0); f.scratch_len().max(i.scratch_len())];
                f.r2c(&mut x.clone(), &mut got, &mut sc);
                let scale = (n as f32).sqrt();
                for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).norm() < 1e-5 * scale,
                        "r2c n {n} avx {avx} k {k}: {g} vs {w}"
                    );
                }
                // c2r against realfft's c2r of the same spectrum.
                let mut spec = want.clone();
                for (k, v) in spec.iter_mut().enumerate() {
                    *v += Complex32::new(0.01 * k as f32, -0.02 * k as f32);
                }
                let mut w_out = vec![0.0f32; n];
                let mut sp2 = spec.clone();
                sp2[0].im = 0.0;
                if n % 2 == 0 {
                    sp2[n / 2].im = 0.0;
                }
                ri.process(&mut sp2, &mut w_out).unwrap();
                let mut g_out = vec![0.0f32; n];
                i.c2r(&mut spec.clone(), &mut g_out, &mut sc);
                for (k, (g, w)) in g_out.iter().zip(&w_out).enumerate() {
                    assert!(
                        (g - w).abs() < 1e-4 * scale,
                        "c2r n {n} avx {avx} k {k}: {g} vs {w}"
                    );
                }
            }
        }
    }

    /// A plan with its vector path switched on or off (where available).
    fn force(mut f: RealFft, on: bool) -> RealFft {
        if let Kind::Even(e) = &mut f.kind {
            e.avx2 = on && e.avx2;
        }
        f
    }
}
