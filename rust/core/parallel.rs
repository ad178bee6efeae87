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

/// Run `f` with `n_threads` worker threads (`None`: all cores).
pub fn with_threads<T, F>(n_threads: Option<usize>, f: F) -> CoreResult<T>
where
    F: FnOnce() -> CoreResult<T> + Send,
    T: Send,
{
    match n_threads {
        None => f(),
        Some(0) => Err(CoreError::parameter("n_threads must be at least 1")),
        Some(n) => pool(n)?.install(f),
    }
}

/// Number of threads the current context runs with.
pub fn current_num_threads() -> usize {
    rayon::current_num_threads()
}
