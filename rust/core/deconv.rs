//! Deconvolution of projection stacks: Richardson-Lucy and Wiener/Tikhonov,
//! on FFT convolutions planned once per stack (see `conv`).

pub mod conv;
pub mod rl;
pub mod wiener;

pub use rl::{richardson_lucy, Boundary, Noise, RlOptions, RlReport};
pub use wiener::{wiener, WienerBoundary, WienerOptions};

/// The PSF's values, row-major, after the checks every method needs: not
/// empty, all finite (the count is given).
pub(crate) fn psf_values(psf: &ndarray::ArrayView2<f32>) -> crate::CoreResult<Vec<f32>> {
    let (kh, kw) = psf.dim();
    if kh == 0 || kw == 0 {
        return Err(crate::CoreError::shape("psf is empty"));
    }
    let v: Vec<f32> = psf.iter().copied().collect();
    let bad = v.iter().filter(|x| !x.is_finite()).count();
    if bad > 0 {
        return Err(crate::CoreError::NonFinite {
            what: "psf".into(),
            count: bad,
        });
    }
    Ok(v)
}

/// `(n, h, w)` of a non-empty stack, with `out` checked to have the same shape.
pub(crate) fn stack_dims(
    stack: &ndarray::ArrayView3<f32>,
    out: &ndarray::ArrayViewMut3<f32>,
) -> crate::CoreResult<(usize, usize, usize)> {
    let (n, h, w) = stack.dim();
    if n == 0 || h == 0 || w == 0 {
        return Err(crate::CoreError::shape(format!(
            "empty stack of shape ({n}, {h}, {w})"
        )));
    }
    if out.dim() != (n, h, w) {
        return Err(crate::CoreError::shape(format!(
            "out has shape {:?}, stack ({n}, {h}, {w})",
            out.dim()
        )));
    }
    Ok((n, h, w))
}

/// An error naming how many values of the stack are NaN or infinite, if any
/// (counted image by image in parallel).
pub(crate) fn check_finite_images(stack: &ndarray::ArrayView3<f32>) -> crate::CoreResult<()> {
    use ndarray::Axis;
    use rayon::prelude::*;
    // Rows in parallel (a single image is one task per row, not one task).
    let bad: usize = stack
        .axis_iter(Axis(0))
        .map(|im| {
            im.axis_iter(Axis(0))
                .into_par_iter()
                .map(|row| row.iter().filter(|v| !v.is_finite()).count())
                .sum::<usize>()
        })
        .sum();
    if bad > 0 {
        return Err(crate::CoreError::NonFinite {
            what: "images".into(),
            count: bad,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Array3};

    fn gauss_psf(n: usize, s: f32) -> Array2<f32> {
        let c = (n as f32 - 1.0) / 2.0;
        let mut k = Array2::from_shape_fn((n, n), |(i, j)| {
            let r2 = (i as f32 - c).powi(2) + (j as f32 - c).powi(2);
            (-r2 / (2.0 * s * s)).exp()
        });
        let sum = k.sum();
        k /= sum;
        k
    }

    #[test]
    fn padded_rl_keeps_a_constant_image_constant_to_the_border() {
        let y = Array3::<f32>::from_elem((3, 40, 33), 7.0);
        let psf = gauss_psf(9, 2.0);
        for accelerate in [false, true] {
            let mut out = Array3::<f32>::zeros((3, 40, 33));
            let opts = RlOptions {
                iterations: 10,
                accelerate,
                ..Default::default()
            };
            let rep = richardson_lucy(y.view(), psf.view(), None, out.view_mut(), &opts).unwrap();
            assert_eq!(rep[0].iterations, 10);
            let err = out.iter().fold(0.0f32, |m, v| m.max((v - 7.0).abs()));
            assert!(err < 1e-3, "accelerate {accelerate}: {err}");
        }
    }

    #[test]
    fn interior_shortcut_matches_the_computed_normalisation() {
        // Without a mask the update uses the PSF's sum in the interior; an
        // all-valid mask goes through the computed H^T(mask) everywhere.
        let y = Array3::<f32>::from_shape_fn((2, 48, 41), |(k, i, j)| {
            // smooth (deconvolution amplifies rounding in fine texture)
            10.0 + 0.2 * i as f32 + 3.0 * (j as f32 / 5.0 + k as f32).sin()
        });
        let psf = gauss_psf(9, 1.7);
        let ones = Array3::<u8>::ones((1, 48, 41));
        let opts = RlOptions {
            iterations: 8,
            ..Default::default()
        };
        let mut a = Array3::<f32>::zeros((2, 48, 41));
        let mut b = Array3::<f32>::zeros((2, 48, 41));
        richardson_lucy(y.view(), psf.view(), None, a.view_mut(), &opts).unwrap();
        richardson_lucy(y.view(), psf.view(), Some(ones.view()), b.view_mut(), &opts).unwrap();
        let err = (&a - &b).iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(err < 1e-3, "{err}");
        let moved = (&a - &y).iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(moved > 0.1, "RL did nothing: {moved}");
    }

    #[test]
    fn strips_give_the_whole_grid_result() {
        // Every option that changes the convolutions' fills and emits, on
        // strips of at most 10 rows (split evenly, so of unequal heights)
        // against one grid.
        // On two threads: one image (both threads on it: each chained
        // strip's passes on both, or with the stopping rule whole strips per
        // thread) and two (one thread per image, H and H^T chained strip by
        // strip unless the stopping rule is on).
        let (h, w) = (47, 38);
        for nimg in [1, 2] {
            let y = Array3::<f32>::from_shape_fn((nimg, h, w), |(k, i, j)| {
                20.0 + 5.0 * ((i * 7 + j * 3 + k) % 11) as f32 + 0.3 * i as f32
            });
            let psf = gauss_psf(7, 1.3);
            let mut mask = Array3::<u8>::ones((1, h, w));
            mask[[0, 20, 9]] = 0;
            for boundary in [Boundary::Zero, Boundary::Padded] {
                for (accelerate, tv, masked, noise) in [
                    (false, 0.0, false, None),
                    (true, 0.0, false, None),
                    (true, 0.01, false, None),
                    (true, 0.0, true, None),
                    (
                        true,
                        0.0,
                        false,
                        Some(Noise {
                            gain: 1.0,
                            read_noise: 2.0,
                        }),
                    ),
                ] {
                    if boundary == Boundary::Zero && (masked || accelerate || tv > 0.0) {
                        continue;
                    }
                    let m = masked.then(|| mask.view());
                    let run = |strip_rows| {
                        let opts = RlOptions {
                            iterations: 6,
                            boundary,
                            accelerate,
                            tv,
                            noise,
                            strip_rows,
                            ..Default::default()
                        };
                        let mut out = Array3::<f32>::zeros((nimg, h, w));
                        let pool = rayon::ThreadPoolBuilder::new()
                            .num_threads(2)
                            .build()
                            .unwrap();
                        let rep = pool
                            .install(|| {
                                richardson_lucy(y.view(), psf.view(), m, out.view_mut(), &opts)
                            })
                            .unwrap();
                        (out, rep[0].iterations)
                    };
                    let (a, ia) = run(Some(0));
                    let (b, ib) = run(Some(10));
                    assert_eq!(ia, ib);
                    let err = (&a - &b).iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let moved = (&a - &y).iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    // TV amplifies rounding at the object's corners (there a
                    // 1e-6 relative change of the data moves a pixel by 4e-2),
                    // so with TV only the bulk must agree to rounding.
                    let tol = if tv > 0.0 { 0.3 } else { 1e-4 * 60.0 };
                    assert!(err < tol, "{boundary:?} {accelerate} {tv}: {err}");
                    let mut d: Vec<f32> = (&a - &b).iter().map(|v| v.abs()).collect();
                    d.sort_by(f32::total_cmp);
                    let med = d[d.len() / 2];
                    assert!(
                        med < 1e-5 * 60.0,
                        "{boundary:?} {accelerate} {tv}: median {med}"
                    );
                    assert!(moved > 0.5, "RL did nothing: {moved}");
                }
            }
        }
    }

    #[test]
    fn masked_pixels_are_filled() {
        let mut y = Array3::<f32>::from_elem((1, 30, 30), 5.0);
        y[[0, 10, 10]] = 1e6; // hot pixel
        let mut mask = Array3::<u8>::ones((1, 30, 30));
        mask[[0, 10, 10]] = 0;
        let psf = gauss_psf(7, 1.5);
        let mut out = Array3::<f32>::zeros((1, 30, 30));
        let opts = RlOptions {
            iterations: 20,
            ..Default::default()
        };
        richardson_lucy(
            y.view(),
            psf.view(),
            Some(mask.view()),
            out.view_mut(),
            &opts,
        )
        .unwrap();
        let err = out.iter().fold(0.0f32, |m, v| m.max((v - 5.0).abs()));
        assert!(err < 1e-2, "{err}");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let y = Array3::<f32>::from_elem((1, 10, 10), f32::NAN);
        let psf = gauss_psf(3, 1.0);
        let mut out = Array3::<f32>::zeros((1, 10, 10));
        assert!(richardson_lucy(
            y.view(),
            psf.view(),
            None,
            out.view_mut(),
            &RlOptions::default()
        )
        .is_err());
        let y = Array3::<f32>::ones((1, 10, 10));
        let neg = -gauss_psf(3, 1.0);
        assert!(richardson_lucy(
            y.view(),
            neg.view(),
            None,
            out.view_mut(),
            &RlOptions::default()
        )
        .is_err());
    }
}
