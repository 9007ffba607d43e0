//! The runtime trait: the only door through which this crate reaches an
//! executor, a timer or a thread pool.

use std::future::Future;
use std::time::{Instant, SystemTime};

/// What the drive loops need from an async runtime. Implemented by each
/// adapter (`TokioRuntime`, `SmolRuntime`); cheap to clone (a handle).
pub trait Runtime: Clone + Send + Sync + 'static {
    /// Runs `future` to completion in the background.
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// Runs the blocking `job` on a thread where blocking is allowed and
    /// resolves to its result, or to `None` if the job panicked.
    fn spawn_blocking<F, T>(&self, job: F) -> impl Future<Output = Option<T>> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;

    /// A future that resolves at `deadline` (at once if it has passed).
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static;

    /// The current instant. The drive loops read time only through this, so a
    /// runtime with a paused or simulated clock stays consistent.
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// The wall-clock time, written into the changes a push creates and
    /// used to seed session ids when the configuration gives no seed.
    fn wall_clock(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A runtime's clocks without the rest of it: what a
/// [`crate::ServerHandle`] carries, so that code running beside the server
/// (broker links) reads time as the server does.
pub(crate) trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    fn wall_clock(&self) -> SystemTime;
}

impl<R: Runtime> Clock for R {
    fn now(&self) -> Instant {
        Runtime::now(self)
    }

    fn wall_clock(&self) -> SystemTime {
        Runtime::wall_clock(self)
    }
}
