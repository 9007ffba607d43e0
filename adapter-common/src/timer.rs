//! hyper's timer on top of any [`Runtime`], so that hyper's own timeouts
//! (the header-read timeout that drops half-sent requests) work the same on
//! every runtime without a runtime-specific timer type.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::runtime::Runtime;

/// A [`hyper::rt::Timer`] whose sleeps are [`Runtime::sleep_until`].
#[derive(Clone, Debug)]
pub struct RuntimeTimer<R>(pub R);

/// hyper wants its sleeps `Sync` as well as `Send`; a runtime's sleep future
/// need only be `Send`. The mutex makes it `Sync` and is never locked: a poll
/// has `&mut` access and reaches the future through `Mutex::get_mut`.
struct SyncSleep(Mutex<Pin<Box<dyn Future<Output = ()> + Send>>>);

impl Future for SyncSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.get_mut().0.get_mut() {
            Ok(sleep) => sleep.as_mut().poll(cx),
            // A sleep cannot panic while polled through `get_mut` elsewhere;
            // if the mutex is poisoned anyway, the deadline counts as passed.
            Err(_) => Poll::Ready(()),
        }
    }
}

impl hyper::rt::Sleep for SyncSleep {}

impl<R: Runtime> hyper::rt::Timer for RuntimeTimer<R> {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(self.0.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(SyncSleep(Mutex::new(Box::pin(
            self.0.sleep_until(deadline),
        ))))
    }

    fn now(&self) -> Instant {
        self.0.now()
    }
}
