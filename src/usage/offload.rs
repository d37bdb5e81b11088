//! CPU-heavy work (tokenizer counts over large texts) off the proxy's worker threads.
//!
//! A proxy worker that runs a tokenizer over megabytes of text stalls every other request
//! scheduled on it: two 8 MiB `count_tokens` calls delayed a one-line chat request by
//! hundreds of milliseconds. Such work runs on Tokio's blocking pool instead, at most
//! [`permits`] jobs at once (the rest wait without holding a worker), so the proxy keeps at
//! least one core whatever clients send.

use std::sync::LazyLock;

use tokio::sync::Semaphore;

/// Jobs running at once: half the cores, at least one.
fn permits() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() / 2)
        .unwrap_or(1)
        .max(1)
}

static SLOTS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(permits()));

/// Runs `job` on the blocking pool once a slot is free. `None` if the job panicked or the
/// pool is gone (shutdown): callers fall back to a cheap estimate.
pub async fn run<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let _slot = SLOTS.acquire().await.ok()?;
    tokio::task::spawn_blocking(job).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_the_job_off_the_calling_thread() {
        let caller = std::thread::current().id();
        let ran_on = run(|| std::thread::current().id()).await.unwrap();
        assert_ne!(ran_on, caller);
        assert_eq!(run(|| 40 + 2).await, Some(42));
    }
}
