//! Reconstruct a uniform disc from its analytic projections
//! (p(s) = 2 sqrt(R^2 - s^2)) and compare with the disc.

use super::*;
use ndarray::Array3;

fn disc_projections(na: usize, nd: usize, radius: f64, shift: f64) -> (Array3<f32>, Vec<f64>) {
    let theta: Vec<f64> = (0..na)
        .map(|i| std::f64::consts::PI * i as f64 / na as f64)
        .collect();
    let c = (nd as f64 - 1.0) / 2.0 + shift;
    let mut p = Array3::<f32>::zeros((na, 1, nd));
    for a in 0..na {
        for j in 0..nd {
            // Average over the pixel width (8 samples).
            let mut v = 0.0;
            for q in 0..8 {
                let s = j as f64 - c + (q as f64 + 0.5) / 8.0 - 0.5;
                v += 2.0 * (radius * radius - s * s).max(0.0).sqrt();
            }
            p[[a, 0, j]] = (v / 8.0) as f32;
        }
    }
    (p, theta)
}

fn geometry(theta: Vec<f64>, nd: usize, c: f64, filter: Filter) -> Geometry {
    let na = theta.len();
    Geometry {
        weights: vec![std::f64::consts::PI / na as f64; na],
        theta,
        centers: vec![c],
        n_out: nd,
        pad_len: 2 * nd,
        mask_radius: Some(nd as f64 / 2.0),
        filter,
    }
}

fn check_disc(img: ndarray::ArrayView2<f32>, radius: f64) {
    let n = img.nrows();
    let h = (n as f64 - 1.0) / 2.0;
    let (mut inside, mut ni, mut outside, mut no) = (0.0, 0, 0.0f64, 0);
    for r in 0..n {
        for c in 0..n {
            let d = ((r as f64 - h).powi(2) + (c as f64 - h).powi(2)).sqrt();
            if d < radius - 3.0 {
                inside += img[[r, c]] as f64;
                ni += 1;
            } else if d > radius + 3.0 && d < n as f64 / 2.0 - 2.0 {
                outside = outside.max((img[[r, c]] as f64).abs());
                no += 1;
            }
        }
    }
    let mean = inside / ni as f64;
    assert!((mean - 1.0).abs() < 0.01, "mean inside {mean}");
    assert!(no > 0 && outside < 0.05, "max outside {outside}");
}

#[test]
fn fbp_reconstructs_a_disc_with_offset_axis() {
    for (nd, shift) in [(64usize, 0.0), (65, 0.0), (64, 2.3)] {
        let (p, theta) = disc_projections(180, nd, 20.0, shift);
        let geo = geometry(theta, nd, (nd as f64 - 1.0) / 2.0 + shift, Filter::Ramp);
        let img = fbp(p.view(), &geo).unwrap();
        check_disc(img.index_axis(ndarray::Axis(0), 0), 20.0);
    }
}

#[test]
fn gridrec_reconstructs_a_disc_with_offset_axis() {
    for (nd, shift) in [(64usize, 0.0), (65, 0.0), (64, 2.3)] {
        let (p, theta) = disc_projections(180, nd, 20.0, shift);
        let geo = geometry(theta, nd, (nd as f64 - 1.0) / 2.0 + shift, Filter::Ramp);
        let img = gridrec(p.view(), &geo, 4).unwrap();
        check_disc(img.index_axis(ndarray::Axis(0), 0), 20.0);
    }
}

#[test]
fn gridrec_on_a_grid_shorter_than_the_padding_reconstructs_a_disc() {
    // Width 5 grids onto ~1.25 n: the filtered projections are cut to the
    // grid around each axis, so an offset axis and odd widths matter.
    for (nd, shift) in [(200usize, 0.0), (201, 0.0), (200, 7.4), (200, -11.6)] {
        let (p, theta) = disc_projections(300, nd, 70.0, shift);
        let geo = geometry(theta, nd, (nd as f64 - 1.0) / 2.0 + shift, Filter::Ramp);
        assert!(grid_length(&geo, 5) < geo.pad_len);
        let img = gridrec(p.view(), &geo, 5).unwrap();
        check_disc(img.index_axis(ndarray::Axis(0), 0), 70.0);
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let (mut p, theta) = disc_projections(10, 16, 5.0, 0.0);
    let mut geo = geometry(theta, 16, 7.5, Filter::Shepp);
    geo.centers = vec![];
    assert!(matches!(fbp(p.view(), &geo), Err(CoreError::Shape(_))));
    geo.centers = vec![7.5];
    geo.pad_len = 8;
    assert!(matches!(
        gridrec(p.view(), &geo, 4),
        Err(CoreError::Parameter(_))
    ));
    geo.pad_len = 32;
    p[[0, 0, 0]] = f32::NAN;
    assert!(matches!(
        fbp(p.view(), &geo),
        Err(CoreError::NonFinite { .. })
    ));
    assert!(Filter::parse("nope").is_err());
}

#[test]
fn gridrec_pairs_singles_and_bands_agree() {
    // Three rows (a pair + a half-plane single), centres differing per row,
    // on 1 thread and on 3 (row bands inside a group): every row is the disc.
    let nd = 64;
    let shifts = [1.7, -2.2, 0.6];
    let mut p = Array3::<f32>::zeros((180, 3, nd));
    let mut theta = vec![];
    for (r, &s) in shifts.iter().enumerate() {
        let (pr, th) = disc_projections(180, nd, 20.0, s);
        p.index_axis_mut(ndarray::Axis(1), r)
            .assign(&pr.index_axis(ndarray::Axis(1), 0));
        theta = th;
    }
    let mut geo = geometry(theta, nd, 0.0, Filter::Ramp);
    geo.centers = shifts.iter().map(|s| (nd as f64 - 1.0) / 2.0 + s).collect();
    let one = crate::parallel::with_threads(Some(1), || gridrec(p.view(), &geo, 4)).unwrap();
    let three = crate::parallel::with_threads(Some(3), || gridrec(p.view(), &geo, 4)).unwrap();
    for r in 0..3 {
        check_disc(one.index_axis(ndarray::Axis(0), r), 20.0);
    }
    let d = one
        .iter()
        .zip(three.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(d < 1e-4, "1 vs 3 threads differ by {d}");
    // One row on 3 threads: the band split alone.
    let p1 = p.slice(ndarray::s![.., 0..1, ..]).to_owned();
    geo.centers.truncate(1);
    let b1 = crate::parallel::with_threads(Some(3), || gridrec(p1.view(), &geo, 4)).unwrap();
    let d1 = one
        .index_axis(ndarray::Axis(0), 0)
        .iter()
        .zip(b1.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(d1 < 1e-4, "banded single differs by {d1}");
}

#[test]
fn centres_off_the_detector_are_parameter_errors_in_both_kernels() {
    // fbp panicked ("index out of bounds", fbp.rs:83) for a centre beyond
    // ~1.9 x the width; gridrec returned garbage (issue 17).
    let (p, theta) = disc_projections(10, 64, 10.0, 0.0);
    for c in [200.0, 2000.0, -0.5, -300.0, 63.5, 1e300] {
        let geo = geometry(theta.clone(), 64, c, Filter::Ramp);
        assert!(matches!(fbp(p.view(), &geo), Err(CoreError::Parameter(_))));
        assert!(matches!(
            gridrec(p.view(), &geo, 4),
            Err(CoreError::Parameter(_))
        ));
    }
    for c in [0.0, 63.0] {
        let mut geo = geometry(theta.clone(), 64, c, Filter::Ramp);
        for n_out in [1, 2, 64, 200] {
            geo.n_out = n_out;
            geo.pad_len = 512;
            let a = fbp(p.view(), &geo).unwrap();
            let b = gridrec(p.view(), &geo, 4).unwrap();
            assert!(a.iter().chain(b.iter()).all(|v| v.is_finite()));
        }
    }
}

#[test]
fn an_output_beyond_memory_is_a_memory_error() {
    let (p, theta) = disc_projections(4, 16, 5.0, 0.0);
    let mut geo = geometry(theta, 16, 7.5, Filter::Ramp);
    geo.n_out = 1 << 30;
    assert!(matches!(fbp(p.view(), &geo), Err(CoreError::Memory(_))));
}
