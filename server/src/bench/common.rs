//! What the benchmarks share: raw signing speed and latency percentiles.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hsm::PrivateKey;

use crate::Error;

/// Signatures per second of `key` over a certificate-sized message with `threads` threads.
pub(crate) fn raw_sign_rate(
    key: &Arc<dyn PrivateKey>,
    threads: usize,
    dur: Duration,
) -> Result<f64, Error> {
    let msg = vec![0x5au8; 600];
    let scheme = key.algorithm().default_scheme();
    let count = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let errors = Arc::new(Mutex::new(None));
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (key, msg, count, errors) = (key.clone(), &msg, count.clone(), errors.clone());
            s.spawn(move || {
                while start.elapsed() < dur {
                    if let Err(e) = key.sign(scheme, msg) {
                        if let Ok(mut g) = errors.lock() {
                            *g = Some(e.to_string());
                        }
                        return;
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    if let Ok(Some(e)) = errors.lock().map(|g| g.clone()) {
        return Err(Error::Io(format!("signing failed: {e}")));
    }
    Ok(count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// The `p` quantile (0 to 1) of sorted latencies; zero when there are none.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// A duration in milliseconds.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
