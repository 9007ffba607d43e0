//! The hand-off between the driver and one connection's writer, and the
//! board where writers post what they flushed.
//!
//! Why not a channel: fan-out puts one frame into every subscriber's queue,
//! so this hand-off runs once per delivery. A general-purpose channel costs a
//! lock-free queue node and a listener notification per item; an [`Outbox`]
//! is a short mutex-guarded push onto a `VecDeque` and a wake-up only when
//! the queue was empty (the writer is idle). The writer takes the whole
//! queue at once, which is also what makes its batches large.
//!
//! Likewise flush reports: a writer posts `(session, messages, bytes)` on the
//! shared [`FlushBoard`] instead of sending a driver input, and the driver
//! reads the board at the start of every turn, before anything it does could
//! depend on a queue's depth. The hub never acts on a depth that is older
//! than the turn it is in, and a publish to a thousand sessions costs no
//! thousand driver inputs. Only while a paced replay waits on flushes does a
//! report also wake the driver, once per turn.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use live_core::{OutFrame, SessionId};

/// One item for a connection's writer.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Write this frame.
    Frame(OutFrame),
    /// Write a close frame, then stop writing.
    Close { code: u16, reason: String },
}

/// What the driver keeps of one connection: where its frames go, and how to
/// tell it to end even if its writer is stuck on a socket that does not drain.
pub(crate) struct Conn {
    pub(crate) outbox: Arc<Outbox>,
}

impl Drop for Conn {
    /// The driver forgot the session (closed, or the driver stopped): the
    /// writer finishes what is queued and ends.
    fn drop(&mut self) {
        self.outbox.close();
    }
}

#[derive(Default)]
struct State {
    items: VecDeque<Outbound>,
    /// The driver forgot the connection: nothing more will come.
    closed: bool,
    /// The hub closed the session: the grace period starts.
    killed: bool,
}

/// One connection's queue of frames to write, filled by the driver, emptied
/// by the connection's writer.
#[derive(Default)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    writer: AtomicWaker,
    supervisor: AtomicWaker,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an item; wakes the writer if it was idle.
    pub(crate) fn push(&self, item: Outbound) {
        let mut s = self.lock();
        if s.closed {
            return;
        }
        let was_empty = s.items.is_empty();
        s.items.push_back(item);
        drop(s);
        if was_empty {
            self.writer.wake();
        }
    }

    /// The hub closed the session: the connection gets its grace period.
    pub(crate) fn kill(&self) {
        self.lock().killed = true;
        self.supervisor.wake();
    }

    /// Nothing more will be queued; what is queued is still written.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.writer.wake();
        self.supervisor.wake();
    }

    /// Waits for queued items and moves all of them into `into` (which must be
    /// empty). Returns `false` once the outbox is closed and drained.
    pub(crate) async fn take_all(&self, into: &mut VecDeque<Outbound>) -> bool {
        poll_fn(|cx| {
            self.writer.register(cx.waker());
            let mut s = self.lock();
            if !s.items.is_empty() {
                std::mem::swap(&mut s.items, into);
                return Poll::Ready(true);
            }
            if s.closed {
                return Poll::Ready(false);
            }
            Poll::Pending
        })
        .await
    }

    /// Moves whatever is queued now to the end of `into`, without waiting.
    pub(crate) fn take_ready(&self, into: &mut VecDeque<Outbound>) {
        let mut s = self.lock();
        if into.is_empty() {
            std::mem::swap(&mut s.items, into);
        } else {
            into.extend(s.items.drain(..));
        }
    }

    /// Resolves once the session was closed by the hub or forgotten by the
    /// driver: from then on the connection only has its grace period left.
    pub(crate) async fn ending(&self) {
        poll_fn(|cx| {
            self.supervisor.register(cx.waker());
            let s = self.lock();
            if s.killed || s.closed {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// Flush reports posted by writers, read by the driver each turn.
///
/// Reading them only when the driver turns for another reason is enough
/// while traffic flows, and costs fan-out nothing. A paced replay is
/// different: it moves on only as flushes come in, and once its topic goes
/// quiet nothing else turns the driver. So while the hub holds such a
/// replay the driver sets [`FlushBoard::set_wanted`], and the first report
/// posted after each read also wakes it (one wake per turn, however many
/// writers post).
#[derive(Default)]
pub(crate) struct FlushBoard {
    reports: Mutex<Vec<(SessionId, usize, usize)>>,
    /// The driver wants to hear of reports as they come.
    wanted: AtomicBool,
    /// A wake-up was sent since the driver last read the board.
    woken: AtomicBool,
}

impl FlushBoard {
    fn reports(&self) -> MutexGuard<'_, Vec<(SessionId, usize, usize)>> {
        self.reports.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Posts one flush report; returns `true` when the poster must wake the
    /// driver (it wants reports now, and nobody woke it since its last read).
    #[must_use]
    pub(crate) fn post(&self, id: SessionId, messages: usize, bytes: usize) -> bool {
        self.reports().push((id, messages, bytes));
        self.wanted.load(Ordering::SeqCst) && !self.woken.swap(true, Ordering::SeqCst)
    }

    /// Moves every report posted so far into `into` (which must be empty).
    pub(crate) fn read(&self, into: &mut Vec<(SessionId, usize, usize)>) {
        self.woken.store(false, Ordering::SeqCst);
        std::mem::swap(&mut *self.reports(), into);
    }

    /// Whether the driver wants to be woken by reports. Returns `true` when
    /// it does and reports are already waiting that woke nobody: the driver
    /// must take another turn now.
    #[must_use]
    pub(crate) fn set_wanted(&self, wanted: bool) -> bool {
        self.wanted.store(wanted, Ordering::SeqCst);
        wanted && !self.reports().is_empty() && !self.woken.swap(true, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn frame(n: u8) -> Outbound {
        Outbound::Frame(OutFrame::Text(bytes::Bytes::from(vec![b'0' + n])))
    }

    #[test]
    fn the_writer_takes_everything_queued_at_once_in_order() {
        let outbox = Outbox::default();
        for n in 0..3 {
            outbox.push(frame(n));
        }
        let mut got = VecDeque::new();
        assert_eq!(outbox.take_all(&mut got).now_or_never(), Some(true));
        let payloads: Vec<_> = got
            .iter()
            .map(|o| match o {
                Outbound::Frame(f) => f.payload().clone(),
                Outbound::Close { .. } => panic!("no close queued"),
            })
            .collect();
        assert_eq!(payloads, [&b"0"[..], b"1", b"2"]);
        got.clear();
        assert_eq!(
            outbox.take_all(&mut got).now_or_never(),
            None,
            "empty: waits"
        );
    }

    #[test]
    fn closing_lets_the_writer_drain_then_stop_and_refuses_more() {
        let outbox = Outbox::default();
        outbox.push(frame(1));
        outbox.close();
        outbox.push(frame(2));
        let mut got = VecDeque::new();
        assert_eq!(outbox.take_all(&mut got).now_or_never(), Some(true));
        assert_eq!(got.len(), 1);
        got.clear();
        assert_eq!(outbox.take_all(&mut got).now_or_never(), Some(false));
        assert_eq!(outbox.ending().now_or_never(), Some(()));
    }

    #[test]
    fn flush_reports_wake_the_driver_only_when_wanted_and_once_per_read() {
        let board = FlushBoard::default();
        let id = SessionId::from_u64(1);
        assert!(!board.post(id, 1, 1), "not wanted: nobody is woken");
        assert!(
            board.set_wanted(true),
            "reports already waiting when it becomes wanted: take a turn now"
        );
        assert!(!board.post(id, 1, 1), "already woken since the last read");
        let mut read = Vec::new();
        board.read(&mut read);
        assert_eq!(read.len(), 2);
        assert!(!board.set_wanted(true), "nothing waiting");
        assert!(board.post(id, 2, 2), "first report after a read wakes");
        assert!(!board.post(id, 3, 3), "the second does not");
        read.clear();
        board.read(&mut read);
        assert!(!board.set_wanted(false));
        assert!(!board.post(id, 1, 1), "no longer wanted");
    }

    #[test]
    fn ending_waits_for_a_kill() {
        let outbox = Outbox::default();
        assert_eq!(outbox.ending().now_or_never(), None);
        outbox.kill();
        assert_eq!(outbox.ending().now_or_never(), Some(()));
    }
}
