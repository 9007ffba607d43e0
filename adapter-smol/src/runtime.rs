//! [`SmolRuntime`]: `adapter_common::Runtime` on a smol executor, and
//! [`ExecutorThreads`] to run that executor on threads of its own.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use adapter_common::Runtime;
use smol::Executor;

/// The smol implementation of [`Runtime`]: tasks on one `smol::Executor`,
/// blocking jobs on smol's blocking pool (`smol::unblock`), timers from
/// async-io.
///
/// The executor only makes progress while some thread runs it: run it with
/// [`ExecutorThreads`], or with `smol::block_on(rt.executor().run(main))`
/// (the binary does both).
#[derive(Debug, Clone)]
pub struct SmolRuntime {
    executor: Arc<Executor<'static>>,
}

impl SmolRuntime {
    /// A runtime on a new executor of its own.
    pub fn new() -> Self {
        Self::with_executor(Arc::new(Executor::new()))
    }

    /// A runtime on an executor the application already runs.
    pub fn with_executor(executor: Arc<Executor<'static>>) -> Self {
        Self { executor }
    }

    /// The executor tasks are spawned on.
    pub fn executor(&self) -> &Arc<Executor<'static>> {
        &self.executor
    }
}

impl Default for SmolRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime for SmolRuntime {
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.executor.spawn(future).detach();
    }

    fn spawn_blocking<F, T>(&self, job: F) -> impl Future<Output = Option<T>> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // A panicking job resolves to `None` (as the trait says) instead of
        // resuming the panic in the awaiting task.
        smol::unblock(move || catch_unwind(AssertUnwindSafe(job)).ok())
    }

    // Not an `async fn`: that would borrow `self`, and the timer must be 'static.
    #[allow(clippy::manual_async_fn)]
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        async move {
            smol::Timer::at(deadline).await;
        }
    }
}

/// Threads running one executor until this value is dropped (dropping it
/// stops and joins them). Tasks left on the executor stay there, unpolled.
#[derive(Debug)]
pub struct ExecutorThreads {
    stop: smol::channel::Sender<()>,
    threads: Vec<JoinHandle<()>>,
}

impl ExecutorThreads {
    /// Starts `count` threads (at least one) running `rt`'s executor.
    pub fn start(rt: &SmolRuntime, count: usize) -> std::io::Result<Self> {
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let mut threads = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            let executor = rt.executor.clone();
            let stopped = stopped.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("smol-worker-{i}"))
                .spawn(move || {
                    smol::block_on(executor.run(async {
                        let _ = stopped.recv().await;
                    }));
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    // Stop the ones already started before reporting.
                    drop(Self { stop, threads });
                    return Err(e);
                }
            }
        }
        Ok(Self { stop, threads })
    }

    /// As many threads as the machine has cores.
    pub fn per_core(rt: &SmolRuntime) -> std::io::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::start(rt, cores)
    }
}

impl Drop for ExecutorThreads {
    fn drop(&mut self) {
        self.stop.close();
        for thread in self.threads.drain(..) {
            // A thread that panicked has already reported it.
            let _ = thread.join();
        }
    }
}
