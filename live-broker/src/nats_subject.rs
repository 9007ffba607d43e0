//! Subject tokens for NATS: topics and session ids may hold characters a
//! subject may not (`.`, `*`, `>`, spaces), so they travel in hex.

use std::fmt::Write as _;

/// The bytes of `text` in hex: a single subject token whatever it holds.
pub(crate) fn hex_topic(text: &str) -> String {
    let mut s = String::with_capacity(text.len() * 2);
    for b in text.as_bytes() {
        let _ = write!(s, "{b:02x}");
    }
    s
}
