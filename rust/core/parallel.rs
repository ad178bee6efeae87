//! Thread-count control. `n_threads = None` runs on rayon's global pool (all
//! cores); `Some(n)` runs inside a pool of `n` threads, built once per `n` and
//! kept, because building a pool costs more than many small kernels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::ThreadPool;

use crate::error::{CoreError, CoreResult};

fn pools() -> &'static Mutex<HashMap<usize, Arc<ThreadPool>>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<ThreadPool>>>> = OnceLock::new();
    POOLS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn pool(n: usize) -> CoreResult<Arc<ThreadPool>> {
    let mut map = pools()
        .lock()
        .map_err(|_| CoreError::numerical("thread-pool cache poisoned"))?;
    if let Some(p) = map.get(&n) {
        return Ok(p.clone());
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(move |i| format!("scintomo-{n}-{i}"))
        .build()
        .map_err(|e| CoreError::parameter(format!("cannot start {n} threads: {e}")))?;
    let p = Arc::new(p);
    map.insert(n, p.clone());
    Ok(p)
}

/// Threads per core a caller may ask for. More only costs: starting 10^6
/// threads took 97 s before this bound (issue 17).
pub const MAX_THREADS_PER_CORE: usize = 64;

/// The largest `n_threads` accepted: `MAX_THREADS_PER_CORE` x the cores this
/// process may run on (`std::thread::available_parallelism`).
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    MAX_THREADS_PER_CORE * cores
}

/// Run `f` with `n_threads` worker threads (`None`: all cores); more than
/// `max_threads()` is a parameter error.
pub fn with_threads<T, F>(n_threads: Option<usize>, f: F) -> CoreResult<T>
where
    F: FnOnce() -> CoreResult<T> + Send,
    T: Send,
{
    match n_threads {
        None => f(),
        Some(0) => Err(CoreError::parameter("n_threads must be at least 1")),
        Some(n) if n > max_threads() => Err(CoreError::parameter(format!(
            "n_threads must be at most {} ({MAX_THREADS_PER_CORE} per core), got {n}",
            max_threads()
        ))),
        Some(n) => pool(n)?.install(f),
    }
}

/// Number of threads the current context runs with.
pub fn current_num_threads() -> usize {
    rayon::current_num_threads()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_beyond_the_bound_are_refused_without_starting_threads() {
        let t = std::time::Instant::now();
        let e = with_threads(Some(1_000_000), || Ok(())).unwrap_err();
        assert!(matches!(e, CoreError::Parameter(_)));
        assert!(t.elapsed().as_secs_f64() < 1.0);
        assert!(with_threads(Some(0), || Ok(())).is_err());
        assert_eq!(
            with_threads(Some(2), || Ok(current_num_threads())).unwrap(),
            2
        );
    }
}
