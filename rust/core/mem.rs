//! Memory bounds checked before a kernel allocates.
//!
//! Linux overcommits: a `Vec` of 100 GB is "allocated" and the process is
//! killed later by the OOM killer (or, when the allocator does refuse, Rust
//! aborts the whole Python process). So a kernel first adds up the bytes a
//! call will need and compares them with the memory the system can give now
//! (`MemAvailable` of /proc/meminfo; the physical memory where that is not
//! readable), and only then allocates, fallibly (`try_zeros`), the big
//! buffers. Both refusals are `CoreError::Memory`, a `MemoryError` in Python.

use crate::error::{CoreError, CoreResult};

/// Bytes the system can give this process now: `MemAvailable` (Linux), else
/// the physical memory; `None` where neither is known (no check then beyond
/// the fallible allocations).
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb.saturating_mul(1024))
    };
    field("MemAvailable:").or_else(|| field("MemTotal:"))
}

/// Refuse a call that needs `bytes` (an estimate, as f64 so that products of
/// user sizes cannot overflow) when the system has less available; `what`
/// names the parameter that sets the size, for the message.
pub fn check_bytes(bytes: f64, what: &str) -> CoreResult<()> {
    if !(bytes.is_finite() && bytes >= 0.0) || bytes > isize::MAX as f64 {
        return Err(CoreError::memory(format!(
            "{what}: the call would need more memory than can be addressed"
        )));
    }
    if let Some(avail) = available_bytes() {
        if bytes > avail as f64 {
            return Err(CoreError::memory(format!(
                "{what}: the call needs about {} but only {} is available",
                human(bytes),
                human(avail as f64)
            )));
        }
    }
    Ok(())
}

/// `n` copies of `value` in a vector allocated fallibly: a refused
/// allocation is a `CoreError::Memory` naming `what`, not an abort.
pub fn try_filled<T: Clone>(n: usize, value: T, what: &str) -> CoreResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        CoreError::memory(format!(
            "{what}: cannot allocate {}",
            human(n as f64 * std::mem::size_of::<T>() as f64)
        ))
    })?;
    v.resize(n, value);
    Ok(v)
}

/// A byte count for messages ("3.2 GB").
pub fn human(bytes: f64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_more_than_the_machine_has_and_accepts_small_calls() {
        assert!(check_bytes(1e3, "x").is_ok());
        let e = check_bytes(1e30, "n_out").unwrap_err();
        assert!(matches!(e, CoreError::Memory(_)));
        assert!(e.to_string().starts_with("n_out:"));
        assert!(matches!(
            check_bytes(f64::NAN, "x"),
            Err(CoreError::Memory(_))
        ));
    }

    #[test]
    fn fallible_allocation_reports_instead_of_aborting() {
        assert_eq!(try_filled(3, 1u8, "x").unwrap(), vec![1, 1, 1]);
        let e = try_filled(usize::MAX / 2, 0u64, "pad").unwrap_err();
        assert!(matches!(e, CoreError::Memory(_)));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512.0), "512 B");
        assert_eq!(human(3.2e9), "3.2 GB");
    }
}
