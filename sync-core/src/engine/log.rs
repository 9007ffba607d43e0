//! One scope's change log: dense cursors, a committed head that bounds what
//! readers see, a trimmed prefix, and pagination on mutation boundaries.

use std::collections::VecDeque;

use crate::store::LogEntry;

/// Why a pull cannot be served from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PullRefusal {
    /// The cursor lies before the retained log (`cursor < first_kept - 1`).
    TooOld { first_kept: u64 },
    /// The cursor lies after the durable head.
    Ahead { head: u64 },
}

/// A page of a pull.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Page<'a> {
    pub(crate) entries: Vec<&'a LogEntry>,
    pub(crate) has_more: bool,
}

/// Entries `first_kept ..= working_head`; readers see only `..= committed_head`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Log {
    entries: VecDeque<LogEntry>,
    /// Cursor of `entries[0]`; everything before it was trimmed.
    first_kept: u64,
    committed_head: u64,
}

impl Log {
    /// An empty log starting at cursor 1.
    pub(crate) fn new() -> Self {
        Log {
            entries: VecDeque::new(),
            first_kept: 1,
            committed_head: 0,
        }
    }

    /// A log whose prefix before `first_kept` was trimmed away.
    pub(crate) fn starting_at(first_kept: u64) -> Self {
        Log {
            entries: VecDeque::new(),
            first_kept: first_kept.max(1),
            committed_head: first_kept.max(1) - 1,
        }
    }

    pub(crate) fn first_kept(&self) -> u64 {
        self.first_kept
    }

    pub(crate) fn committed_head(&self) -> u64 {
        self.committed_head
    }

    /// Last cursor written, durable or not.
    pub(crate) fn working_head(&self) -> u64 {
        self.first_kept + self.entries.len() as u64 - 1
    }

    /// Appends an entry; its cursor must be `working_head() + 1`.
    pub(crate) fn append(&mut self, entry: LogEntry) {
        debug_assert_eq!(entry.change.cursor, self.working_head() + 1);
        self.entries.push_back(entry);
    }

    /// Makes everything up to `head` visible to readers.
    pub(crate) fn commit_to(&mut self, head: u64) {
        self.committed_head = head.min(self.working_head()).max(self.committed_head);
    }

    /// Drops every entry that is not durable.
    pub(crate) fn rollback(&mut self) {
        let keep = (self.committed_head + 1 - self.first_kept) as usize;
        self.entries.truncate(keep);
    }

    /// Drops entries with cursor `< before` (never beyond the committed head).
    pub(crate) fn trim(&mut self, before: u64) {
        let before = before.min(self.committed_head + 1);
        while self.first_kept < before {
            self.entries.pop_front();
            self.first_kept += 1;
        }
    }

    /// Committed entries with cursor `< before`, oldest first.
    pub(crate) fn committed_before(&self, before: u64) -> impl Iterator<Item = &LogEntry> {
        let end = before.min(self.committed_head + 1);
        self.entries
            .iter()
            .take(end.saturating_sub(self.first_kept) as usize)
    }

    /// Committed entries after `cursor`, at most `limit` unless the first
    /// mutation alone is larger, ending on a mutation boundary.
    pub(crate) fn pull(&self, cursor: u64, limit: usize) -> Result<Page<'_>, PullRefusal> {
        if cursor.saturating_add(1) < self.first_kept {
            return Err(PullRefusal::TooOld {
                first_kept: self.first_kept,
            });
        }
        if cursor > self.committed_head {
            return Err(PullRefusal::Ahead {
                head: self.committed_head,
            });
        }
        let start = (cursor + 1 - self.first_kept) as usize;
        let end = (self.committed_head + 1 - self.first_kept) as usize;
        let limit = limit.max(1);
        let mut cut = start;
        let mut i = start;
        while i < end {
            let group_end = self.entries[i].group_end;
            let next = (group_end + 1 - self.first_kept) as usize;
            let next = next.clamp(i + 1, end);
            if next - start > limit && cut > start {
                break;
            }
            cut = next;
            i = next;
            if cut - start >= limit {
                break;
            }
        }
        Ok(Page {
            entries: self.entries.range(start..cut).collect(),
            has_more: cut < end,
        })
    }
}
