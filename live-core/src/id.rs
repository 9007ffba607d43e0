//! Session identifiers and where they come from.
//!
//! A [`SessionId`] is a 64-bit value drawn from an [`IdGenerator`]; by default
//! [`SeededIds`], a bijective mix of a seeded counter. Ids are never the internal
//! slab slot, so a closed session's id is never handed to a later session (a late
//! input for it is recognised as stale instead of reaching a stranger), and ids
//! reveal nothing about how many sessions exist.

use std::fmt;

/// Public identity of one session. Never shared by two live sessions, and with
/// [`SeededIds`] never reused during the hub's life.
///
/// Displays as 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(u64);

impl SessionId {
    /// Wraps a raw value (for adapters that keep ids in their own tables).
    pub const fn from_u64(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw value.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Source of session id values. The hub asks again when a value collides with a
/// live session. Uniqueness over the hub's whole life is the generator's job;
/// [`SeededIds`] guarantees it, a random generator makes reuse vanishingly rare.
///
/// Any `FnMut() -> u64 + Send` closure is a generator.
pub trait IdGenerator: Send {
    /// The next candidate id value.
    fn next_id(&mut self) -> u64;
}

impl<F: FnMut() -> u64 + Send> IdGenerator for F {
    fn next_id(&mut self) -> u64 {
        self()
    }
}

/// The default generator: SplitMix64 over a counter started at the seed. The mix
/// is a bijection on `u64`, so the first 2^64 ids never repeat, and the same seed
/// always gives the same sequence.
#[derive(Debug, Clone)]
pub struct SeededIds {
    state: u64,
}

impl SeededIds {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }
}

impl IdGenerator for SeededIds {
    fn next_id(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_distinct_values() {
        let mut a = SeededIds::new(7);
        let mut b = SeededIds::new(7);
        let xs: Vec<u64> = (0..1000).map(|_| a.next_id()).collect();
        let ys: Vec<u64> = (0..1000).map(|_| b.next_id()).collect();
        assert_eq!(xs, ys);
        let mut sorted = xs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), xs.len());
        assert_ne!(SeededIds::new(8).next_id(), xs[0]);
    }

    #[test]
    fn display_is_sixteen_hex_digits() {
        assert_eq!(SessionId::from_u64(0xab).to_string(), "00000000000000ab");
    }
}
