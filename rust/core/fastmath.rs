//! Vectorisable elementary functions for the memory-bound kernels.
//!
//! `f32::ln` is a libm call that stops LLVM from vectorising a loop; on a
//! -log flat-field pass it costs more than moving the bytes. `ln_fast`
//! reduces x = 2^e m with m in [sqrt(1/2), sqrt(2)) and uses the atanh
//! series ln m = 2 z (1 + z^2/3 + z^4/5 + z^6/7), z = (m - 1) / (m + 1),
//! |z| <= 0.1716, whose truncation error (2 z^9 / 9 < 3e-8) is below float32
//! rounding. It is branch-free (a loop over a slice compiles to SIMD) and
//! short (one division, three multiply-adds), so a -log pass stays
//! memory-bound. Valid for positive normal numbers; callers route zero,
//! negative, subnormal, infinite and NaN inputs elsewhere
//! (see `ln_fast_is_valid`).

const SQRT_2: f32 = std::f32::consts::SQRT_2;
// ln 2 split so that e * LN2_HI is exact for |e| < 2^10.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;

/// True where `ln_fast(x)` equals `x.ln()` to float32 rounding.
#[inline(always)]
pub fn ln_fast_is_valid(x: f32) -> bool {
    (f32::MIN_POSITIVE..f32::INFINITY).contains(&x)
}

/// Natural logarithm of a positive normal f32.
#[inline(always)]
pub fn ln_fast(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    // mantissa in [1, 2)
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > SQRT_2;
    e += big as i32;
    let m = if big { 0.5 * m } else { m };
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let p = z2 * (1.0 / 7.0) + (1.0 / 5.0);
    let p = z2 * p + (1.0 / 3.0);
    let p = z2 * p + 1.0;
    let fe = e as f32;
    fe * LN2_HI + (fe * LN2_LO + 2.0 * z * p)
}

/// `fn $name(args) -> R { body }` whose body (the loops, with any helpers
/// it calls `#[inline(always)]`) runs compiled for AVX2 + FMA when the CPU
/// has them, and as compiled otherwise: the wheel's baseline is SSE2, where
/// an element-wise loop gets four lanes at best.
macro_rules! avx2_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) $(-> $r)? {
            #[inline(always)]
            fn body($($a: $t),*) $(-> $r)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast($($a: $t),*) $(-> $r)? {
                    body($($a),*)
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has AVX2 and FMA.
                    return unsafe { fast($($a),*) };
                }
            }
            body($($a),*)
        }
    };
}
pub(crate) use avx2_dispatch;

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
