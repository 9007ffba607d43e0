//! Signed-token verification (JWT, with `jsonwebtoken`): which keys and
//! algorithms are trusted, and what each way a token can be wrong answers.
//!
//! A verifier trusts exactly one family of keys, fixed by the operator: an
//! HS256 secret, or RS256/ES256 public keys (one PEM key or a JWKS file).
//! The algorithm a token names must be one its key was configured for, so
//! `alg: none` and an HS256 token "signed" with a public key are refused
//! before any signature is checked.

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use server_core::claims::Claims;

use crate::hooks::AuthRejection;

/// Longest token accepted, in bytes. A real one is well under 2 KiB; a
/// bigger one is refused before it is decoded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a verifier could not be built from the operator's configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The HS256 secret is empty.
    #[error("the token secret is empty")]
    EmptySecret,
    /// The key file could not be read.
    #[error("cannot read the public key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds neither an RSA nor a P-256 EC public key in PEM, nor
    /// a JWKS with such keys.
    #[error("{path} holds no RS256 or ES256 public key (PEM or JWKS): {reason}")]
    NoKey {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// One trusted key and the one algorithm it verifies.
struct TrustedKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies tokens against the configured keys and turns their claims into
/// [`Claims`].
pub struct TokenVerifier {
    keys: Vec<TrustedKey>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algorithms: Vec<Algorithm> = self.keys.iter().map(|k| k.algorithm).collect();
        f.debug_struct("TokenVerifier")
            .field("algorithms", &algorithms)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Tokens signed with HS256 and this shared secret.
    pub fn hs256(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::EmptySecret);
        }
        Ok(Self {
            keys: vec![TrustedKey {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
            }],
        })
    }

    /// Tokens signed with the private half of a public key read from `path`:
    /// an RSA key in PEM (RS256), a P-256 EC key in PEM (ES256), or a JWKS
    /// (`{"keys":[...]}`) of such keys, chosen by the token's `kid`.
    pub fn from_public_key_file(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let content = std::fs::read(path).map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_public_key(&content).map_err(|reason| KeyError::NoKey {
            path: shown,
            reason,
        })
    }

    /// As [`TokenVerifier::from_public_key_file`], from the file's content.
    pub fn from_public_key(content: &[u8]) -> Result<Self, String> {
        let trimmed = content.trim_ascii_start();
        if trimmed.starts_with(b"{") {
            return Self::from_jwks(trimmed);
        }
        let (algorithm, key) = if let Ok(key) = DecodingKey::from_rsa_pem(content) {
            (Algorithm::RS256, key)
        } else if let Ok(key) = DecodingKey::from_ec_pem(content) {
            (Algorithm::ES256, key)
        } else {
            return Err("not an RSA or EC public key in PEM".into());
        };
        Ok(Self {
            keys: vec![TrustedKey {
                kid: None,
                algorithm,
                key,
            }],
        })
    }

    fn from_jwks(content: &[u8]) -> Result<Self, String> {
        let set: JwkSet = serde_json::from_slice(content).map_err(|e| e.to_string())?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            // Public keys only: a symmetric key in a JWKS would let anyone
            // holding the file sign tokens.
            let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                    if ec.curve == EllipticCurve::P256 =>
                {
                    Algorithm::ES256
                }
                _ => continue,
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
            keys.push(TrustedKey {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key,
            });
        }
        if keys.is_empty() {
            return Err("the JWKS has no RS256 or ES256 public key".into());
        }
        Ok(Self { keys })
    }

    /// The claims of `token` if it is well-formed, signed by a trusted key
    /// with that key's algorithm, has `sub` and `exp`, and is valid now
    /// (`nbf`, if present, passed; `exp` not yet). Refusals are 401
    /// `unauthorized`, or `token_expired` for a token past its `exp`.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthRejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthRejection::unauthorized(format!(
                "token too large (over {MAX_TOKEN_BYTES} bytes)"
            )));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthRejection::unauthorized("malformed token or unsupported algorithm"))?;
        let mut trusted = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| k.kid.is_none() || header.kid.is_none() || k.kid == header.kid)
            .peekable();
        if trusted.peek().is_none() {
            return Err(AuthRejection::unauthorized(format!(
                "unexpected token algorithm {:?} or unknown key",
                header.alg
            )));
        }
        let mut last = None;
        for key in trusted {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation(key.algorithm)) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = Some(e),
            }
        }
        Err(rejection(last.map(|e| e.into_kind())))
    }
}

fn validation(algorithm: Algorithm) -> Validation {
    let mut v = Validation::new(algorithm);
    v.set_required_spec_claims(&["exp", "sub"]);
    v.validate_nbf = true;
    // The server closes a session exactly at `exp`; accepting a token a
    // minute past it would disagree with that.
    v.leeway = 0;
    v.validate_aud = false;
    v
}

fn rejection(kind: Option<jsonwebtoken::errors::ErrorKind>) -> AuthRejection {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        Some(ErrorKind::ExpiredSignature) => AuthRejection::token_expired("token expired"),
        Some(ErrorKind::ImmatureSignature) => AuthRejection::unauthorized("token not valid yet"),
        Some(ErrorKind::InvalidSignature) => AuthRejection::unauthorized("bad token signature"),
        Some(ErrorKind::InvalidAlgorithm) => {
            AuthRejection::unauthorized("unexpected token algorithm")
        }
        Some(ErrorKind::MissingRequiredClaim(claim)) => {
            AuthRejection::unauthorized(format!("token lacks the {claim} claim"))
        }
        Some(ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_)) => {
            AuthRejection::unauthorized("malformed token claims")
        }
        _ => AuthRejection::unauthorized("invalid token"),
    }
}

/// Signs `claims` with HS256 and `secret`: how an operator (or a test) mints
/// a token the server started with `--jwt-secret` accepts.
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}

#[cfg(test)]
mod tests;
