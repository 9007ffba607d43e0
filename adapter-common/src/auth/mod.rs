//! Token authentication of the ready server: the [`TokenHooks`] both
//! binaries run with, the verifier of signed tokens ([`verify`]) and where
//! a request carries its token ([`extract`]).
//!
//! What the claims allow is decided by `server_core::claims`, the same for
//! HTTP sync requests, WebSocket commands and in-band refreshes.

pub mod extract;
pub mod verify;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::request::Parts;
use live_core::Command;
use server_core::Policy;
use server_core::claims::{Access, ClaimsPolicy};

use crate::hooks::{AuthRejection, Hooks};
pub use verify::{KeyError, MAX_TOKEN_BYTES, TokenVerifier, mint_hs256};

/// The ready server's hooks: with a verifier, every upgrade and sync request
/// needs a valid token and may do only what its claims allow; without one
/// (loopback, or `--allow-anonymous`) everybody may do everything.
#[derive(Debug, Default)]
pub struct TokenHooks {
    verifier: Option<TokenVerifier>,
}

impl TokenHooks {
    /// Tokens required, verified by `verifier`.
    pub fn required(verifier: TokenVerifier) -> Self {
        Self {
            verifier: Some(verifier),
        }
    }

    /// No authentication: everybody is [`Access::Anonymous`].
    pub fn anonymous() -> Self {
        Self { verifier: None }
    }

    /// Whether tokens are required.
    pub fn requires_tokens(&self) -> bool {
        self.verifier.is_some()
    }

    fn verify(&self, token: &str) -> Result<Access, AuthRejection> {
        match &self.verifier {
            Some(v) => v
                .verify(token)
                .map(|claims| Access::Token(std::sync::Arc::new(claims))),
            None => Err(AuthRejection::unauthorized(
                "this server does not use tokens",
            )),
        }
    }
}

impl Hooks for TokenHooks {
    type User = Access;

    async fn authenticate(&self, request: &Parts) -> Result<Access, AuthRejection> {
        if self.verifier.is_none() {
            return Ok(Access::Anonymous);
        }
        let token = extract::token(request).ok_or_else(|| {
            AuthRejection::unauthorized(
                "a token is required (Authorization: Bearer, the token query parameter or the token cookie)",
            )
        })?;
        self.verify(token)
    }

    fn authorize_scope(&self, user: &Access, scope: &str) -> Result<String, String> {
        ClaimsPolicy.authorize_scope(user, scope)
    }

    fn authorize_topic(&self, user: &Access, topic: &str, command: Command) -> bool {
        ClaimsPolicy.authorize_topic(user, topic, command)
    }

    fn presence_user(&self, user: &Access) -> Option<String> {
        ClaimsPolicy.presence_user(user)
    }

    fn client_key(&self, user: &Access) -> Option<String> {
        user.user().map(|sub| format!("sub:{sub}"))
    }

    fn refresh(&self, token: &str) -> Result<Access, AuthRejection> {
        self.verify(token)
    }

    fn expires_at(&self, user: &Access) -> Option<SystemTime> {
        let at = user.expires_at()?;
        UNIX_EPOCH.checked_add(Duration::from_millis(at.as_millis()))
    }
}

#[cfg(test)]
mod tests {
    use testkit::tokens;

    use super::*;

    fn request(token: Option<&str>) -> Parts {
        let mut b = http::Request::builder().uri("/_sync/pull");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(()).unwrap().into_parts().0
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("ready at once")
    }

    #[test]
    fn anonymous_hooks_let_everybody_in() {
        let hooks = TokenHooks::anonymous();
        assert_eq!(
            block_on(hooks.authenticate(&request(None))),
            Ok(Access::Anonymous)
        );
        assert!(hooks.refresh("anything").is_err());
    }

    #[test]
    fn token_hooks_want_a_valid_token_and_follow_its_claims() {
        let hooks = TokenHooks::required(TokenVerifier::hs256(tokens::SECRET.as_bytes()).unwrap());
        let missing = block_on(hooks.authenticate(&request(None))).unwrap_err();
        assert_eq!(
            (missing.status.as_u16(), missing.code),
            (401, "unauthorized")
        );
        let claims = tokens::claims("alice", 60, &["user:{sub}"], &["chat"], &[]);
        let good = tokens::good(&claims);
        let user = block_on(hooks.authenticate(&request(Some(&good)))).unwrap();
        assert_eq!(
            hooks.authorize_scope(&user, "user:alice"),
            Ok("user:alice".into())
        );
        assert!(hooks.authorize_scope(&user, "user:bob").is_err());
        assert!(hooks.authorize_topic(&user, "chat", Command::Subscribe));
        assert!(!hooks.authorize_topic(&user, "chat", Command::Publish));
        let exp = hooks.expires_at(&user).unwrap();
        let claimed = claims["exp"].as_u64().expect("exp in seconds");
        assert_eq!(exp, UNIX_EPOCH + Duration::from_secs(claimed));
        assert_eq!(hooks.refresh(&good).unwrap(), user);
        let expired = tokens::good(&tokens::claims("alice", -5, &[], &[], &[]));
        assert_eq!(hooks.refresh(&expired).unwrap_err().code, "token_expired");
    }
}
