//! [`TokioRuntime`]: `adapter_common::Runtime` on tokio.

use std::future::Future;
use std::time::Instant;

use adapter_common::Runtime;
use tokio::runtime::Handle;

/// The tokio implementation of [`Runtime`]: tasks, blocking pool and timers
/// of one tokio runtime.
#[derive(Debug, Clone)]
pub struct TokioRuntime {
    handle: Handle,
}

impl TokioRuntime {
    /// The runtime the caller runs on. Panics outside a tokio runtime.
    pub fn current() -> Self {
        Self::new(Handle::current())
    }

    /// The runtime behind `handle`.
    pub fn new(handle: Handle) -> Self {
        Self { handle }
    }
}

impl Runtime for TokioRuntime {
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(future);
    }

    fn spawn_blocking<F, T>(&self, job: F) -> impl Future<Output = Option<T>> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let task = self.handle.spawn_blocking(job);
        async move { task.await.ok() }
    }

    /// tokio's clock, so that tests with paused time (`start_paused`) move
    /// the server's timers and deadlines with it.
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    // Not an `async fn`: that would borrow `self`, and the timer must be 'static.
    #[allow(clippy::manual_async_fn)]
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        // Built on first poll, so creating it never needs a runtime context.
        async move { tokio::time::sleep_until(deadline.into()).await }
    }
}
