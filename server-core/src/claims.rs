//! What a signed token allows: its claims and the pure decisions made from
//! them, for the ready server's token authentication.
//!
//! Verifying a token's signature is the adapters' job (it happens where the
//! request is authenticated); once verified, every decision about what the
//! claims allow is made here, so the HTTP routes, the hub's subscribe and
//! publish commands and an in-band refresh all decide the same way.
//!
//! Patterns (`scopes`, `topics`, `publish`) are matched whole: `*` stands for
//! any run of characters (none included) and `{sub}` for the token's user,
//! taken literally (a `*` in a user name matches only a `*`).

use live_core::{Command, sync_scope};
use serde::{Deserialize, Serialize};
use sync_core::Timestamp;

use crate::policy::Policy;

/// The claims of a verified token. Unknown claims are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch (required).
    pub exp: u64,
    /// Sync scopes the user may push to, pull from, snapshot and be poked on
    /// (`sync:<scope>` subscriptions).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Live topics the user may subscribe to.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Live topics the user may publish to.
    #[serde(default)]
    pub publish: Vec<String>,
}

/// Who a request or session is, for the ready server: anybody (the server
/// runs without token authentication, which only loopback or an explicit
/// `--allow-anonymous` permits) or the holder of a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No authentication configured: everything is allowed.
    Anonymous,
    /// A verified token's claims, shared: every session and request holds
    /// its `Access`, so it stays one pointer wide (an idle connection pays
    /// for it).
    Token(std::sync::Arc<Claims>),
}

impl Access {
    /// When this access ends (the token's `exp`), as wall time.
    pub fn expires_at(&self) -> Option<Timestamp> {
        match self {
            Access::Anonymous => None,
            Access::Token(c) => Some(Timestamp::from_millis(c.exp.saturating_mul(1000))),
        }
    }

    /// The user's name (`sub`), if any.
    pub fn user(&self) -> Option<&str> {
        match self {
            Access::Anonymous => None,
            Access::Token(c) => Some(&c.sub),
        }
    }

    /// May this access use sync `scope`?
    pub fn allows_scope(&self, scope: &str) -> bool {
        match self {
            Access::Anonymous => true,
            Access::Token(c) => any_matches(&c.scopes, &c.sub, scope),
        }
    }

    /// May this access run `command` on live `topic`? `sync:<scope>` topics
    /// follow the scopes; unsubscribing is always allowed.
    pub fn allows_topic(&self, topic: &str, command: Command) -> bool {
        let Access::Token(c) = self else {
            return true;
        };
        if let Some(scope) = sync_scope(topic) {
            return command != Command::Publish && self.allows_scope(scope);
        }
        match command {
            Command::Subscribe => any_matches(&c.topics, &c.sub, topic),
            Command::Publish => any_matches(&c.publish, &c.sub, topic),
            _ => true,
        }
    }
}

/// The ready server's [`Policy`]: each decision from the [`Access`] alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClaimsPolicy;

impl Policy<Access> for ClaimsPolicy {
    fn authorize_scope(&self, user: &Access, scope: &str) -> Result<String, String> {
        if user.allows_scope(scope) {
            Ok(scope.to_owned())
        } else {
            Err(format!("the token does not allow scope {scope}"))
        }
    }

    fn authorize_topic(&self, user: &Access, topic: &str, command: Command) -> bool {
        user.allows_topic(topic, command)
    }

    fn expires_at(&self, user: &Access) -> Option<Timestamp> {
        user.expires_at()
    }

    /// A token's user is its `sub` claim; anonymous access shows `null`.
    fn presence_user(&self, user: &Access) -> Option<String> {
        user.user().map(str::to_owned)
    }
}

fn any_matches(patterns: &[String], sub: &str, value: &str) -> bool {
    patterns.iter().any(|p| matches(p, sub, value))
}

/// One piece of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Literal(&'a str),
    Star,
}

/// Splits a pattern into literals and stars, `{sub}` becoming a literal.
fn pieces<'a>(pattern: &'a str, sub: &'a str) -> Vec<Piece<'a>> {
    let mut out = Vec::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        let star = rest.find('*');
        let user = rest.find("{sub}");
        let next = match (star, user) {
            (Some(s), Some(u)) => s.min(u),
            (Some(s), None) => s,
            (None, Some(u)) => u,
            (None, None) => rest.len(),
        };
        if next > 0 {
            out.push(Piece::Literal(&rest[..next]));
        }
        rest = &rest[next..];
        if let Some(after) = rest.strip_prefix('*') {
            out.push(Piece::Star);
            rest = after;
        } else if let Some(after) = rest.strip_prefix("{sub}") {
            out.push(Piece::Literal(sub));
            rest = after;
        }
    }
    out
}

/// Whether `value` matches `pattern` whole (`*`: any run, `{sub}`: `sub`).
/// Linear in practice: the classic backtrack-to-last-star glob match.
pub fn matches(pattern: &str, sub: &str, value: &str) -> bool {
    let pieces = pieces(pattern, sub);
    let mut pos = 0usize;
    let mut i = 0usize;
    // (index of the piece after the last star, value position it was tried at)
    let mut resume: Option<(usize, usize)> = None;
    loop {
        if i == pieces.len() {
            if pos == value.len() {
                return true;
            }
        } else {
            match pieces[i] {
                Piece::Star => {
                    resume = Some((i + 1, pos));
                    i += 1;
                    continue;
                }
                Piece::Literal(lit) => {
                    if value[pos..].starts_with(lit) {
                        pos += lit.len();
                        i += 1;
                        continue;
                    }
                }
            }
        }
        // Mismatch: let the last star take one more character.
        let Some((after_star, tried)) = resume else {
            return false;
        };
        let Some(c) = value[tried..].chars().next() else {
            return false;
        };
        let next = tried + c.len_utf8();
        resume = Some((after_star, next));
        i = after_star;
        pos = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(scopes: &[&str], topics: &[&str], publish: &[&str]) -> Access {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        Access::Token(std::sync::Arc::new(Claims {
            sub: "alice".into(),
            exp: 2_000_000_000,
            scopes: v(scopes),
            topics: v(topics),
            publish: v(publish),
        }))
    }

    #[test]
    fn an_access_is_one_pointer_wide() {
        // Every session holds one: its size is paid per idle connection.
        assert_eq!(std::mem::size_of::<Access>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn patterns_match_whole_values_with_stars_and_the_user() {
        assert!(matches("docs", "a", "docs"));
        assert!(!matches("docs", "a", "docs2"));
        assert!(!matches("docs", "a", "doc"));
        assert!(matches("*", "a", ""));
        assert!(matches("*", "a", "anything:at/all"));
        assert!(matches("team:*", "a", "team:"));
        assert!(matches("team:*", "a", "team:x"));
        assert!(!matches("team:*", "a", "teams:x"));
        assert!(matches("user:{sub}", "alice", "user:alice"));
        assert!(!matches("user:{sub}", "alice", "user:bob"));
        assert!(matches("user:{sub}:*", "alice", "user:alice:notes"));
        assert!(matches("a*b*c", "x", "aXbYbZc"));
        assert!(!matches("a*b*c", "x", "aXbYbZ"));
        assert!(matches("*é*", "x", "café au lait"));
        assert!(matches("{sub}", "a{sub}", "a{sub}"));
    }

    #[test]
    fn a_star_in_the_user_name_is_no_wildcard() {
        assert!(matches("user:{sub}", "*", "user:*"));
        assert!(!matches("user:{sub}", "*", "user:bob"));
    }

    #[test]
    fn scopes_and_topics_follow_the_claims() {
        let a = token(&["user:{sub}", "team:*"], &["chat:*"], &["chat:general"]);
        assert!(a.allows_scope("user:alice"));
        assert!(a.allows_scope("team:red"));
        assert!(!a.allows_scope("user:bob"));
        assert!(!a.allows_scope("_default"));
        assert!(a.allows_topic("chat:random", Command::Subscribe));
        assert!(!a.allows_topic("news", Command::Subscribe));
        assert!(a.allows_topic("chat:general", Command::Publish));
        assert!(!a.allows_topic("chat:random", Command::Publish));
        assert!(a.allows_topic("news", Command::Unsubscribe));
        // sync topics follow the scopes, and nobody publishes on them.
        assert!(a.allows_topic("sync:user:alice", Command::Subscribe));
        assert!(!a.allows_topic("sync:user:bob", Command::Subscribe));
        assert!(!a.allows_topic("sync:user:alice", Command::Publish));
    }

    #[test]
    fn a_token_without_lists_allows_nothing_and_anonymous_everything() {
        let none = token(&[], &[], &[]);
        assert!(!none.allows_scope("a"));
        assert!(!none.allows_topic("t", Command::Subscribe));
        assert!(!none.allows_topic("t", Command::Publish));
        assert!(Access::Anonymous.allows_scope("a"));
        assert!(Access::Anonymous.allows_topic("t", Command::Publish));
        assert_eq!(Access::Anonymous.expires_at(), None);
    }

    #[test]
    fn the_policy_refuses_with_a_reason_and_reports_expiry() {
        let a = token(&["a"], &[], &[]);
        assert_eq!(ClaimsPolicy.authorize_scope(&a, "a"), Ok("a".into()));
        assert!(
            ClaimsPolicy
                .authorize_scope(&a, "b")
                .unwrap_err()
                .contains("b")
        );
        assert_eq!(
            ClaimsPolicy.expires_at(&a),
            Some(Timestamp::from_millis(2_000_000_000_000))
        );
    }

    #[test]
    fn claims_parse_with_optional_lists() {
        let c: Claims = serde_json::from_str(r#"{"sub":"u","exp":5,"extra":1}"#).unwrap();
        assert_eq!(c.scopes, Vec::<String>::new());
        assert!(serde_json::from_str::<Claims>(r#"{"sub":"u"}"#).is_err());
    }
}
