//! The `--history PATTERN=SIZE[/TTL]` value: which topics keep a history of
//! recent publications for clients that resume after a reconnect.
//!
//! Parsed apart from the flag table so the rule's syntax and its error
//! messages are one small, tested function.

use std::time::Duration;

use live_core::{HistoryLimits, HistoryRule};

/// Parses `PATTERN=SIZE[/TTL]`: `*` in the pattern matches any run of
/// characters, SIZE is how many publications are kept (at least 1), TTL a
/// whole number with a unit `s`, `m` or `h` (`chat:*=100/300s`).
pub(crate) fn parse_history_rule(value: &str) -> Result<HistoryRule, String> {
    let (pattern, limits) = value.rsplit_once('=').ok_or_else(|| {
        format!("`{value}` is not PATTERN=SIZE[/TTL] (for example chat:*=100/300s)")
    })?;
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return Err(format!("`{value}` has an empty topic pattern"));
    }
    let (size, ttl) = match limits.split_once('/') {
        Some((size, ttl)) => (size, Some(ttl)),
        None => (limits, None),
    };
    let size: usize = size
        .trim()
        .parse()
        .map_err(|_| format!("`{value}`: SIZE `{size}` is not a whole number"))?;
    if size == 0 {
        return Err(format!("`{value}`: SIZE must be at least 1"));
    }
    let ttl = ttl.map(|t| parse_ttl(value, t.trim())).transpose()?;
    Ok(HistoryRule::new(pattern, HistoryLimits::new(size, ttl)))
}

fn parse_ttl(value: &str, ttl: &str) -> Result<Duration, String> {
    let unit = ttl.chars().last().filter(char::is_ascii_alphabetic);
    let (number, seconds) = match unit {
        Some('s') => (&ttl[..ttl.len() - 1], 1),
        Some('m') => (&ttl[..ttl.len() - 1], 60),
        Some('h') => (&ttl[..ttl.len() - 1], 3600),
        _ => {
            return Err(format!(
                "`{value}`: TTL `{ttl}` needs a unit: s, m or h (for example 300s)"
            ));
        }
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{value}`: TTL `{ttl}` is not a whole number with a unit"))?;
    if n == 0 {
        return Err(format!("`{value}`: TTL must be more than zero"));
    }
    Ok(Duration::from_secs(n.saturating_mul(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_with_and_without_ttl() {
        let r = parse_history_rule("chat:*=100/300s").unwrap();
        assert_eq!(r.pattern, "chat:*");
        assert_eq!(
            r.limits,
            HistoryLimits::new(100, Some(Duration::from_secs(300)))
        );
        assert_eq!(
            parse_history_rule("news=5").unwrap().limits,
            HistoryLimits::new(5, None)
        );
        assert_eq!(
            parse_history_rule("a=1/2m").unwrap().limits.ttl,
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_history_rule("a=1/1h").unwrap().limits.ttl,
            Some(Duration::from_secs(3600))
        );
        // The last `=` separates: a pattern may contain one.
        assert_eq!(parse_history_rule("k=v=3").unwrap().pattern, "k=v");
    }

    #[test]
    fn malformed_rules_say_what_is_wrong() {
        for (bad, says) in [
            ("chat:*", "PATTERN=SIZE"),
            ("=5", "empty topic pattern"),
            ("chat=lots", "not a whole number"),
            ("chat=0", "at least 1"),
            ("chat=5/300", "needs a unit"),
            ("chat=5/300d", "needs a unit"),
            ("chat=5/xs", "whole number with a unit"),
            ("chat=5/0s", "more than zero"),
            ("chat=-5", "not a whole number"),
        ] {
            let err = parse_history_rule(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
