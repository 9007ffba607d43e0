//! Where a simulation's choices come from: a seeded generator for the seeded
//! tests, or the bytes of a fuzz input, so the fuzzer steers the same faults
//! the seeds explore. Shared by every simulator of the workspace.

/// Where the simulation's choices come from.
#[derive(Debug, Clone)]
pub enum Decisions {
    /// xorshift64*: the simulation's own seeded generator.
    Seeded(u64),
    /// The bytes of a fuzz input, read in order. Once they run out every
    /// `chance` is false and every number is 0, so the run heals and ends.
    Bytes {
        /// The input.
        data: Vec<u8>,
        /// How much of it has been read.
        pos: usize,
    },
}

impl Decisions {
    /// A seeded generator.
    pub fn seeded(seed: u64) -> Self {
        Decisions::Seeded(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Choices read from `data`.
    pub fn from_bytes(data: &[u8]) -> Self {
        Decisions::Bytes {
            data: data.to_vec(),
            pos: 0,
        }
    }

    fn take(&mut self, n: usize) -> Option<u64> {
        let Decisions::Bytes { data, pos } = self else {
            return None;
        };
        let bytes = data.get(*pos..*pos + n)?;
        *pos += n;
        Some(bytes.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
    }

    /// The next raw number.
    pub fn number(&mut self) -> u64 {
        match self {
            Decisions::Seeded(x) => {
                *x ^= *x >> 12;
                *x ^= *x << 25;
                *x ^= *x >> 27;
                x.wrapping_mul(0x2545_F491_4F6C_DD1D)
            }
            Decisions::Bytes { .. } => self.take(8).unwrap_or(0),
        }
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        match self {
            Decisions::Seeded(_) => self.number() % n.max(1),
            // Two bytes are plenty for every range the simulation draws from.
            Decisions::Bytes { .. } => self.take(2).unwrap_or(0) % n.max(1),
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        match self {
            Decisions::Seeded(_) => (self.number() >> 11) as f64 / (1u64 << 53) as f64 <= p,
            Decisions::Bytes { .. } => self.take(2).is_some_and(|v| (v as f64 + 0.5) / 65536.0 < p),
        }
    }
}
