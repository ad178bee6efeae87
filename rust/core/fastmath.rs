//! Vectorisable elementary functions for the memory-bound kernels.
//!
//! `f32::ln` is a libm call that stops LLVM from vectorising a loop; on a
//! -log flat-field pass it costs more than moving the bytes. `ln_fast` is the
//! Cephes `logf` polynomial (S. Moshier), written branch-free so a loop over
//! a slice compiles to SIMD. It is exact to about 1 ulp for positive normal
//! numbers; callers route zero, negative, subnormal, infinite and NaN inputs
//! to `f32::ln` (see `ln_fast_is_valid`).

const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// True where `ln_fast(x)` equals `x.ln()` to about 1 ulp.
#[inline(always)]
pub fn ln_fast_is_valid(x: f32) -> bool {
    x >= f32::MIN_POSITIVE && x < f32::INFINITY
}

/// Natural logarithm of a positive normal f32 (Cephes logf).
#[inline(always)]
pub fn ln_fast(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    // mantissa in [0.5, 1)
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < SQRT_HALF;
    e -= small as i32;
    m = if small { m + m - 1.0 } else { m - 1.0 };
    let fe = e as f32;
    let z = m * m;
    let mut y = 7.037_683_6e-2_f32;
    y = y * m - 1.151_461e-1;
    y = y * m + 1.167_699_9e-1;
    y = y * m - 1.242_014_1e-1;
    y = y * m + 1.424_932_3e-1;
    y = y * m - 1.666_805_8e-1;
    y = y * m + 2.000_071_5e-1;
    y = y * m - 2.499_999_4e-1;
    y = y * m + 3.333_333_1e-1;
    y = y * m * z;
    y += -2.121_944_4e-4 * fe;
    y += -0.5 * z;
    let r = m + y;
    r + 0.693_359_4 * fe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_libm_over_many_decades() {
        let mut x = 1.0e-30_f32;
        let mut worst = 0.0_f64;
        while x < 1.0e30 {
            let want = (x as f64).ln();
            let got = ln_fast(x) as f64;
            let err = (got - want).abs() / want.abs().max(1.0);
            worst = worst.max(err);
            x *= 1.000_37;
        }
        assert!(worst < 4.0e-7, "worst relative error {worst}");
    }

    #[test]
    fn validity_excludes_special_values() {
        for x in [0.0, -1.0, f32::NAN, f32::INFINITY, 1e-40] {
            assert!(!ln_fast_is_valid(x), "{x}");
        }
        assert!(ln_fast_is_valid(1.0));
    }
}
