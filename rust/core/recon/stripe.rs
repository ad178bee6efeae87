//! Building blocks of Vo et al.'s ring removal (Optics Express 26, 28396,
//! 2018): sorting each detector column of a sinogram along the angles, and
//! a sliding median along the detector rows. The algorithms themselves are
//! composed in Python (`scintomo.recon._stripes`).

use crate::error::{CoreError, CoreResult};
use ndarray::{Array2, ArrayView2, Axis, Zip};
use rayon::prelude::*;

/// Widest median window along a row (pixels).
pub const MAX_MEDIAN: usize = (1 << 20) + 1;

fn check(a: &ArrayView2<f32>, size: usize) -> CoreResult<()> {
    if a.is_empty() {
        return Err(CoreError::shape("empty sinogram"));
    }
    // Each thread holds a padded row of n + size keys and a window of size:
    // a window of 10^9 would abort allocating them.
    if size == 0 || size % 2 == 0 || size > MAX_MEDIAN {
        return Err(CoreError::parameter(format!(
            "median size must be odd, >= 1 and <= {MAX_MEDIAN}, got {size}"
        )));
    }
    let bad = a.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        return Err(CoreError::NonFinite {
            what: "sinogram".into(),
            count: bad,
        });
    }
    Ok(())
}

/// Order-preserving map of a finite f32 onto u32 (`f32::total_cmp`'s order),
/// so that sorting and searching work on plain integers.
#[inline]
fn key(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

#[inline]
fn unkey(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

/// Median over a window of `size` along each row (axis 1), edges mirrored
/// (scipy.ndimage's "reflect": d c b a | a b c d). A sorted window of integer
/// keys updated by one removal and one insertion per step: O(size) per pixel
/// (a short memmove), on a row padded once.
pub fn median_rows(a: ArrayView2<f32>, size: usize) -> CoreResult<Array2<f32>> {
    check(&a, size)?;
    let mut out = Array2::<f32>::zeros(a.dim());
    let n = a.ncols();
    let h = size / 2;
    let reflect = move |i: isize| -> usize {
        // Period 2n mirror with the edge sample repeated.
        let p = 2 * n as isize;
        let mut j = i.rem_euclid(p);
        if j >= n as isize {
            j = p - 1 - j;
        }
        j as usize
    };
    Zip::from(out.rows_mut())
        .and(a.rows())
        .par_for_each(|mut o, row| {
            // padded[j] = row[reflect(j - h)], j in 0..n + 2h
            let padded: Vec<u32> = (0..n + 2 * h)
                .map(|j| key(row[reflect(j as isize - h as isize)]))
                .collect();
            let mut win: Vec<u32> = padded[..size].to_vec();
            win.sort_unstable();
            for i in 0..n {
                o[i] = unkey(win[h]);
                if i + 1 < n {
                    let gone = padded[i];
                    let come = padded[i + size];
                    if gone != come {
                        if let Ok(p) = win.binary_search(&gone) {
                            win.remove(p);
                        }
                        let q = win.partition_point(|&v| v < come);
                        win.insert(q, come);
                    }
                }
            }
        });
    Ok(out)
}

/// Sort every column of `sino` (angle, column) along the angles, smooth the
/// sorted sinogram by a median of `size` along the detector, and put the
/// smoothed values back in the original order. Returns (sorted, smoothed
/// sorted, smoothed in the original order) - Vo et al. 2018, algorithm 3.
pub fn sort_median(
    sino: ArrayView2<f32>,
    size: usize,
) -> CoreResult<(Array2<f32>, Array2<f32>, Array2<f32>)> {
    check(&sino, size)?;
    let (na, nc) = sino.dim();
    let t = sino.t().as_standard_layout().into_owned(); // (column, angle)
    let mut sorted_t = Array2::<f32>::zeros((nc, na));
    let mut perm = Array2::<u32>::zeros((nc, na));
    Zip::from(sorted_t.rows_mut())
        .and(perm.rows_mut())
        .and(t.rows())
        .par_for_each(|mut s, mut p, col| {
            // (value key, index) packed in one u64: an unstable integer sort
            // gives the stable order by value (ties by index)
            let mut kv: Vec<u64> = col
                .iter()
                .enumerate()
                .map(|(i, &v)| ((key(v) as u64) << 32) | i as u64)
                .collect();
            kv.sort_unstable();
            for (k, &x) in kv.iter().enumerate() {
                s[k] = unkey((x >> 32) as u32);
                p[k] = x as u32;
            }
        });
    let sorted = sorted_t.t().as_standard_layout().into_owned();
    let smooth = median_rows(sorted.view(), size)?;
    let smooth_t = smooth.t().as_standard_layout().into_owned();
    let mut back_t = Array2::<f32>::zeros((nc, na));
    back_t
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(perm.axis_iter(Axis(0)).into_par_iter())
        .zip(smooth_t.axis_iter(Axis(0)).into_par_iter())
        .for_each(|((mut b, p), s)| {
            for (k, &i) in p.iter().enumerate() {
                b[i as usize] = s[k];
            }
        });
    let back = back_t.t().as_standard_layout().into_owned();
    Ok((sorted, smooth, back))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn median_matches_brute_force_with_mirrored_edges() {
        let a = array![[5.0f32, 1.0, 4.0, 2.0, 8.0, 7.0, 3.0]];
        let m = median_rows(a.view(), 3).unwrap();
        // windows: [5 5 1] [5 1 4] [1 4 2] [4 2 8] [2 8 7] [8 7 3] [7 3 3]
        assert_eq!(m.row(0).to_vec(), vec![5.0, 4.0, 2.0, 4.0, 7.0, 7.0, 3.0]);
        assert!(median_rows(a.view(), 2).is_err());
    }

    #[test]
    fn keys_keep_the_order_of_floats() {
        let v = [-f32::MAX, -2.5, -1e-30, -0.0, 0.0, 1e-30, 3.0, f32::MAX];
        for w in v.windows(2) {
            assert!(key(w[0]) <= key(w[1]));
        }
        for x in v {
            assert_eq!(unkey(key(x)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn median_matches_a_sort_per_window() {
        let n = 37;
        let row: Vec<f32> = (0..n).map(|i| ((i * 7919) % 23) as f32 - 11.5).collect();
        let a = Array2::from_shape_vec((1, n), row.clone()).unwrap();
        for size in [1usize, 3, 9, 21] {
            let m = median_rows(a.view(), size).unwrap();
            let h = (size / 2) as isize;
            for i in 0..n {
                let mut w: Vec<f32> = (i as isize - h..=i as isize + h)
                    .map(|j| {
                        let p = 2 * n as isize;
                        let mut j = j.rem_euclid(p);
                        if j >= n as isize {
                            j = p - 1 - j;
                        }
                        row[j as usize]
                    })
                    .collect();
                w.sort_by(f32::total_cmp);
                assert_eq!(m[(0, i)], w[size / 2], "size {size} at {i}");
            }
        }
    }

    #[test]
    fn sort_median_round_trips() {
        let a = array![[3.0f32, 1.0], [1.0, 2.0], [2.0, 0.0]];
        let (s, sm, back) = sort_median(a.view(), 1).unwrap();
        assert_eq!(s, array![[1.0, 0.0], [2.0, 1.0], [3.0, 2.0]]);
        assert_eq!(sm, s);
        assert_eq!(back, a);
    }
}
