//! How the replica digests server answers: push results acknowledge or
//! reject pending mutations, pull pages and snapshots move the confirmed
//! state, and every change of either rebases the optimistic state.

use std::time::Instant;

use super::{Replica, ReplicaEvent};
use crate::app::App;
use crate::protocol::{PullResponse, PushResponse, SnapshotResponse};

impl<A: App> Replica<A> {
    pub(super) fn fail(&mut self, now: Instant, operation: crate::Operation, status: Option<u16>) {
        let delay = self.backoff.next_delay();
        self.retry_at = Some(now + delay);
        self.events
            .push_back(ReplicaEvent::RequestFailed { operation, status });
    }

    pub(super) fn on_push(&mut self, now: Instant, count: usize, resp: PushResponse) {
        let first = self
            .pending
            .iter()
            .position(|p| p.acked_at.is_none())
            .unwrap_or(self.pending.len());
        let mut idx = first;
        let mut transient = false;
        let mut changed = false;
        for result in resp.results.into_iter().take(count) {
            let Some(p) = self.pending.get_mut(idx) else {
                break;
            };
            if result.ok {
                p.acked_at = Some(result.cursor);
                if result.cursor > self.cursor {
                    self.need_pull = true;
                }
                idx += 1;
            } else if result.is_transient() {
                transient = true;
                break;
            } else {
                let Some(p) = self.pending.remove(idx) else {
                    break;
                };
                changed = true;
                self.events.push_back(ReplicaEvent::Rejected {
                    mutation: Box::new(p.mutation),
                    result: Box::new(result),
                });
            }
        }
        changed |= self.drop_confirmed(None);
        if changed {
            self.rebase();
        }
        if transient {
            self.fail(now, crate::Operation::Push, Some(200));
        }
    }

    pub(super) fn on_pull(&mut self, asked: u64, resp: PullResponse) -> Option<()> {
        if asked != self.cursor {
            // Answer to an older position (a snapshot reset happened): stale.
            self.need_pull = true;
            return Some(());
        }
        let mut last = self.cursor;
        for c in &resp.changes {
            if Some(c.cursor) != last.checked_add(1) || c.scope != self.config.scope {
                return None;
            }
            last = c.cursor;
        }
        for c in &resp.changes {
            self.app.absorb(&mut self.confirmed, &c.data);
        }
        // Trust the changes, not `next_cursor`: a cursor never moves past
        // data this replica has absorbed.
        self.cursor = last;
        // A poke that came while this pull was out may announce a commit
        // after what it read.
        let poked = std::mem::take(&mut self.poked_during_pull);
        self.need_pull = resp.has_more || poked > self.cursor;
        let moved = !resp.changes.is_empty();
        let dropped = self.drop_confirmed(resp.client_seq);
        if moved || dropped {
            self.rebase();
        }
        Some(())
    }

    pub(super) fn on_snapshot(&mut self, resp: SnapshotResponse) -> Option<()> {
        self.confirmed = self.app.restore(&resp.data).ok()?;
        self.cursor = resp.cursor;
        self.need_snapshot = false;
        self.need_pull = true;
        self.drop_confirmed(resp.client_seq);
        self.rebase();
        self.events.push_back(ReplicaEvent::Reset {
            cursor: resp.cursor,
        });
        Some(())
    }

    /// Drops pending mutations already in the confirmed state: those acked
    /// at or before the cursor, and those the server reports applied.
    pub(super) fn drop_confirmed(&mut self, applied_seq: Option<u64>) -> bool {
        let before = self.pending.len();
        let cursor = self.cursor;
        self.pending.retain(|p| {
            let seq = p.mutation.seq.unwrap_or(0);
            let by_seq = applied_seq.is_some_and(|s| seq <= s);
            let by_ack = p.acked_at.is_some_and(|c| c <= cursor);
            !(by_seq || by_ack)
        });
        before != self.pending.len()
    }

    pub(super) fn rebase(&mut self) {
        let mut state = self.confirmed.clone();
        for p in &self.pending {
            if let Ok(datas) = self.app.apply(&state, &p.mutation) {
                for d in &datas {
                    self.app.absorb(&mut state, d);
                }
            }
        }
        self.optimistic = state;
        self.events.push_back(ReplicaEvent::Changed);
    }
}
