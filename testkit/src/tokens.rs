//! Signed tokens for testing a server's token authentication: good ones and
//! every hostile kind (forged signature, `alg: none`, HS256 "signed" with the
//! RSA public key, expired, not yet valid, huge), minted with fixed test keys.
//!
//! The keys under `testkit/keys/` are public test fixtures: they protect
//! nothing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The HS256 secret test servers are started with.
pub const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";
/// The RSA test key pair (PEM).
pub const RSA_PRIVATE_PEM: &[u8] = include_bytes!("../keys/rsa.pem");
/// The RSA test public key (PEM), what a server is given.
pub const RSA_PUBLIC_PEM: &[u8] = include_bytes!("../keys/rsa.pub.pem");
/// The P-256 test key pair (PKCS#8 PEM).
pub const EC_PRIVATE_PEM: &[u8] = include_bytes!("../keys/ec.pem");
/// The P-256 test public key (PEM).
pub const EC_PUBLIC_PEM: &[u8] = include_bytes!("../keys/ec.pub.pem");

/// Seconds since the Unix epoch now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Claims for `sub` valid for `ttl` seconds (negative: expired), allowing
/// these scopes, subscribe topics and publish topics.
pub fn claims(sub: &str, ttl: i64, scopes: &[&str], topics: &[&str], publish: &[&str]) -> Value {
    let exp = now_secs().saturating_add_signed(ttl);
    json!({"sub": sub, "exp": exp, "scopes": scopes, "topics": topics, "publish": publish})
}

/// HS256 with `secret`.
pub fn hs256(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing")
}

/// HS256 with [`SECRET`]: what a test server accepts.
pub fn good(claims: &Value) -> String {
    hs256(SECRET, claims)
}

/// RS256 with the RSA test key.
pub fn rs256(claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM).expect("RSA test key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).expect("RS256 signing")
}

/// ES256 with the EC test key.
pub fn es256(claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(EC_PRIVATE_PEM).expect("EC test key");
    jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &key).expect("ES256 signing")
}

/// A good token whose signature was replaced by one made with another secret.
pub fn forged(claims: &Value) -> String {
    let real = good(claims);
    let other = hs256("not-the-server-secret", claims);
    let (body, _) = real.rsplit_once('.').expect("three parts");
    let (_, signature) = other.rsplit_once('.').expect("three parts");
    format!("{body}.{signature}")
}

/// An unsigned token, `{"alg":"none"}`, with an empty signature.
pub fn alg_none(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.")
}

/// HS256 keyed with the RSA *public* key's PEM: the algorithm-confusion
/// attack on a server that trusts that public key.
pub fn hs256_with_public_key(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(RSA_PUBLIC_PEM),
    )
    .expect("HS256 signing")
}

/// A validly signed token over `size` bytes long (a padding claim).
pub fn huge(size: usize) -> String {
    let mut c = claims("alice", 3600, &["*"], &["*"], &["*"]);
    c["pad"] = Value::String("x".repeat(size));
    good(&c)
}

/// A good token not valid before `delay` seconds from now.
pub fn not_yet_valid(delay: u64) -> String {
    let mut c = claims("alice", 3600, &["*"], &["*"], &["*"]);
    c["nbf"] = json!(now_secs() + delay);
    good(&c)
}
