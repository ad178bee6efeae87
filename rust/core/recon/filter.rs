//! Ramp filters for FBP and gridding.

use crate::error::{CoreError, CoreResult};
use rustfft::{num_complex::Complex64, FftPlanner};
use std::f64::consts::PI;

/// Apodisation window multiplying the ramp.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Filter {
    Ramp,
    Shepp,
    Cosine,
    Hamming,
    Hann,
    Parzen,
}

impl Filter {
    pub fn parse(s: &str) -> CoreResult<Self> {
        Ok(match s {
            "ramp" | "ram-lak" | "ramlak" => Filter::Ramp,
            "shepp" | "shepp-logan" => Filter::Shepp,
            "cosine" => Filter::Cosine,
            "hamming" => Filter::Hamming,
            "hann" | "hanning" => Filter::Hann,
            "parzen" => Filter::Parzen,
            o => {
                return Err(CoreError::parameter(format!(
                    "unknown filter {o:?}; expected ramp, shepp, cosine, hamming, hann or parzen"
                )))
            }
        })
    }

    /// Window value at frequency `f`, cycles per pixel, |f| <= 1/2.
    pub fn window(self, f: f64) -> f64 {
        let f = f.abs();
        match self {
            Filter::Ramp => 1.0,
            // sinc(f) = sin(pi f) / (pi f), as scikit-image's "shepp-logan".
            Filter::Shepp => {
                if f == 0.0 {
                    1.0
                } else {
                    (PI * f).sin() / (PI * f)
                }
            }
            Filter::Cosine => (PI * f).cos(),
            Filter::Hamming => 0.54 + 0.46 * (2.0 * PI * f).cos(),
            Filter::Hann => 0.5 + 0.5 * (2.0 * PI * f).cos(),
            // Parzen (de la Vallee Poussin) window over [-1/2, 1/2].
            Filter::Parzen => {
                let u = 2.0 * f;
                if u <= 0.5 {
                    1.0 - 6.0 * u * u + 6.0 * u * u * u
                } else {
                    2.0 * (1.0 - u).powi(3)
                }
            }
        }
    }
}

/// Real, even frequency response (DFT order, length `n`) of the band-limited
/// ramp of Kak and Slaney (1988, eq. 3.61: h(0) = 1/4, h(k odd) = -1/(pi k)^2,
/// h(k even) = 0), times the window. Unlike a sampled |f| its DC term is not
/// zero, which keeps the reconstruction's mean right (scikit-image does the
/// same). Units: 1/pixel; the FBP result is sum_theta w_theta (p * h)(s).
pub fn filter_response(filter: Filter, n: usize) -> Vec<f64> {
    let mut h = vec![Complex64::new(0.0, 0.0); n];
    h[0].re = 0.25;
    for k in (1..=n / 2).step_by(2) {
        let v = -1.0 / (PI * k as f64).powi(2);
        h[k].re = v;
        h[n - k].re = v;
    }
    let mut planner = FftPlanner::<f64>::new();
    planner.plan_fft_forward(n).process(&mut h);
    (0..n)
        .map(|k| {
            let f = if k <= n / 2 {
                k as f64
            } else {
                k as f64 - n as f64
            } / n as f64;
            h[k].re * filter.window(f)
        })
        .collect()
}
