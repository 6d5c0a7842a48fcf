//! Request deadlines: a client that was answered "request timed out" must not have a
//! certificate recorded behind its back, or its retry would get a second one.
//!
//! The HTTP layer gives every request a [`Deadline`] (its request timeout) and runs the
//! handler inside [`Deadline::run`]. The issuance pipeline checks it twice: before it signs
//! (no signature for a request nobody waits for) and, atomically, right before the durable
//! record: [`Deadline::begin_commit`] either claims the request for the commit or finds it
//! given up. The HTTP layer's timer calls [`Deadline::give_up`] when it fires: when that
//! succeeds it answers 503 and nothing will be recorded; when a commit is already under way
//! it waits for the commit to finish and answers with its outcome instead. So the answer
//! "timed out" and a recorded certificate exclude each other.
//!
//! Protocol crates move authority calls to tokio's blocking pool, where the request's
//! task-local deadline is not visible: [`spawn_blocking`] carries it over.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use crate::{Error, Result};

const OPEN: u8 = 0;
const COMMITTING: u8 = 1;
const GIVEN_UP: u8 = 2;

/// The latest time a request may still commit, shared by the answering side and the
/// pipeline.
#[derive(Clone, Debug)]
pub struct Deadline(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    at: Instant,
    state: AtomicU8,
}

tokio::task_local! {
    static CURRENT: Deadline;
}

thread_local! {
    static ON_THREAD: std::cell::RefCell<Option<Deadline>> = const { std::cell::RefCell::new(None) };
}

impl Deadline {
    /// A deadline at `at`.
    pub fn new(at: Instant) -> Deadline {
        Deadline(Arc::new(Inner {
            at,
            state: AtomicU8::new(OPEN),
        }))
    }

    /// When it falls.
    pub fn at(&self) -> Instant {
        self.0.at
    }

    /// Runs `fut` with this deadline as the current one of the task.
    pub async fn run<F: std::future::Future>(&self, fut: F) -> F::Output {
        CURRENT.scope(self.clone(), fut).await
    }

    /// The answering side gives up: true when nothing will be recorded for this request
    /// any more (answer "timed out"), false when a commit has started (wait for it).
    pub fn give_up(&self) -> bool {
        match self
            .0
            .state
            .compare_exchange(OPEN, GIVEN_UP, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(s) => s == GIVEN_UP,
        }
    }

    /// True when the request was given up or its time has passed.
    pub fn passed(&self) -> bool {
        self.0.state.load(Ordering::SeqCst) == GIVEN_UP || Instant::now() >= self.0.at
    }

    fn refusal() -> Error {
        Error::Unavailable(
            "the request's time ran out before its certificate was recorded; nothing was issued"
                .into(),
        )
    }

    /// Claims the request for its durable record: from then on it cannot be given up.
    /// Fails (nothing may be recorded) when the answering side gave up or the time has
    /// passed.
    pub fn begin_commit(&self) -> Result<()> {
        if Instant::now() >= self.0.at {
            // Make it final: the answering side must not wait for a commit now.
            let _ = self.give_up();
        }
        match self
            .0
            .state
            .compare_exchange(OPEN, COMMITTING, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => Ok(()),
            Err(_) => Err(Deadline::refusal()),
        }
    }

    /// The deadline of the request being served: the task's, or the one carried onto this
    /// blocking thread by [`spawn_blocking`].
    pub fn current() -> Option<Deadline> {
        ON_THREAD
            .with(|d| d.borrow().clone())
            .or_else(|| CURRENT.try_with(Deadline::clone).ok())
    }

    /// Runs `f` on this thread with this deadline as the current one.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Reset(Option<Deadline>);
        impl Drop for Reset {
            fn drop(&mut self) {
                let old = self.0.take();
                ON_THREAD.with(|d| *d.borrow_mut() = old);
            }
        }
        let old = ON_THREAD.with(|d| d.borrow_mut().replace(self.clone()));
        let _reset = Reset(old);
        f()
    }
}

/// Refuses when the current request's deadline has passed (before expensive work such
/// as signing). Outside a request it always passes.
pub fn check() -> Result<()> {
    match Deadline::current() {
        Some(d) if d.passed() => Err(Deadline::refusal()),
        _ => Ok(()),
    }
}

/// Claims the current request (if any) for its durable record (see
/// [`Deadline::begin_commit`]).
pub fn begin_commit() -> Result<()> {
    match Deadline::current() {
        Some(d) => d.begin_commit(),
        None => Ok(()),
    }
}

/// `tokio::task::spawn_blocking` that carries the current request deadline onto the
/// blocking thread, so that the issuance pipeline sees it.
pub fn spawn_blocking<T, F>(f: F) -> tokio::task::JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let d = Deadline::current();
    tokio::task::spawn_blocking(move || match d {
        Some(d) => d.enter(f),
        None => f(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn give_up_and_commit_exclude_each_other() {
        let far = Instant::now() + Duration::from_secs(60);
        let d = Deadline::new(far);
        d.begin_commit().unwrap();
        assert!(!d.give_up(), "a commit under way cannot be given up");
        let d = Deadline::new(far);
        assert!(d.give_up());
        assert!(d.give_up());
        assert!(d.begin_commit().is_err());
        let past = Deadline::new(Instant::now());
        assert!(past.begin_commit().is_err());
        assert!(past.give_up(), "a passed deadline is given up for good");
    }

    #[test]
    fn the_thread_deadline_is_scoped() {
        assert!(Deadline::current().is_none());
        let d = Deadline::new(Instant::now());
        d.enter(|| {
            assert!(Deadline::current().is_some());
            assert!(check().is_err());
        });
        assert!(Deadline::current().is_none());
        assert!(check().is_ok());
    }
}
