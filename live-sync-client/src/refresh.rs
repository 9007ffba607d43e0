//! When to refresh a session's token in-band: read the JWT's `exp` (the
//! signature is the server's business) and refresh a little before it, so
//! the server never closes the connection for an expired token (4001).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The topic of in-band refreshes.
pub(crate) const REFRESH: &str = "refresh";

/// Never refresh more often than this, even if the provider keeps handing
/// out tokens close to their expiry.
pub(crate) const MIN_REFRESH_GAP: Duration = Duration::from_secs(5);

/// The `exp` claim of a JWT, in seconds since the epoch.
pub(crate) fn expiry(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_u64()
}

/// How long from `now` until `token` should be refreshed: a tenth of its
/// remaining life before `exp`, at least 5 s and at most 60 s early. `None`
/// for a token without a readable `exp`.
pub(crate) fn refresh_in(token: &str, now: SystemTime) -> Option<Duration> {
    let exp = UNIX_EPOCH + Duration::from_secs(expiry(token)?);
    let left = exp.duration_since(now).unwrap_or_default();
    let early = (left / 10).clamp(Duration::from_secs(5), Duration::from_secs(60));
    Some(left.saturating_sub(early))
}

/// `{"topic":"refresh","data":{"token":T}}`.
pub(crate) fn frame(token: &str) -> String {
    json!({"topic": REFRESH, "data": {"token": token}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(exp: u64) -> String {
        let part = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.sig",
            part(json!({"alg":"HS256"})),
            part(json!({"sub":"a","exp":exp}))
        )
    }

    #[test]
    fn refresh_comes_a_tenth_of_the_life_early_within_bounds() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |ttl: u64| refresh_in(&jwt(1_000_000 + ttl), now).unwrap();
        assert_eq!(at(3600), Duration::from_secs(3540), "60 s early at most");
        assert_eq!(at(300), Duration::from_secs(270), "a tenth early");
        assert_eq!(at(20), Duration::from_secs(15), "5 s early at least");
        assert_eq!(at(3), Duration::ZERO, "due now");
        assert_eq!(
            refresh_in(&jwt(10), now),
            Some(Duration::ZERO),
            "expired: now"
        );
    }

    #[test]
    fn tokens_without_a_readable_exp_are_not_scheduled() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for t in ["", "opaque", "a.b.c", "a.e30.c"] {
            assert_eq!(refresh_in(t, now), None, "{t}");
        }
        let v: Value = serde_json::from_str(&frame("T")).unwrap();
        assert_eq!(v, json!({"topic":"refresh","data":{"token":"T"}}));
    }
}
