//! Every hostile token the verifier must refuse, and the good ones it must
//! accept, minted with testkit's fixed test keys.

use testkit::tokens;

use super::*;

fn hs() -> TokenVerifier {
    TokenVerifier::hs256(tokens::SECRET.as_bytes()).unwrap()
}

fn rsa() -> TokenVerifier {
    TokenVerifier::from_public_key(tokens::RSA_PUBLIC_PEM).unwrap()
}

fn alice() -> serde_json::Value {
    tokens::claims("alice", 3600, &["user:{sub}"], &["chat:*"], &[])
}

fn refused(result: Result<Claims, AuthRejection>) -> (u16, &'static str, String) {
    let r = result.expect_err("refused");
    (r.status.as_u16(), r.code, r.message)
}

#[test]
fn good_tokens_give_their_claims() {
    let c = hs().verify(&tokens::good(&alice())).unwrap();
    assert_eq!(c.sub, "alice");
    assert_eq!(c.scopes, ["user:{sub}"]);
    assert_eq!(rsa().verify(&tokens::rs256(&alice())).unwrap().sub, "alice");
    let ec = TokenVerifier::from_public_key(tokens::EC_PUBLIC_PEM).unwrap();
    assert_eq!(ec.verify(&tokens::es256(&alice())).unwrap().sub, "alice");
}

#[test]
fn a_forged_signature_is_unauthorized() {
    let (status, code, message) = refused(hs().verify(&tokens::forged(&alice())));
    assert_eq!((status, code), (401, "unauthorized"));
    assert!(message.contains("signature"), "{message}");
    let (status, _, _) = refused(hs().verify(&tokens::hs256("other", &alice())));
    assert_eq!(status, 401);
}

#[test]
fn alg_none_is_unauthorized() {
    for verifier in [hs(), rsa()] {
        let (status, code, _) = refused(verifier.verify(&tokens::alg_none(&alice())));
        assert_eq!((status, code), (401, "unauthorized"));
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_unauthorized() {
    let (status, code, message) = refused(rsa().verify(&tokens::hs256_with_public_key(&alice())));
    assert_eq!((status, code), (401, "unauthorized"));
    assert!(message.contains("algorithm"), "{message}");
}

#[test]
fn a_token_of_another_algorithm_is_unauthorized() {
    let (status, _, _) = refused(hs().verify(&tokens::rs256(&alice())));
    assert_eq!(status, 401);
    let (status, _, _) = refused(rsa().verify(&tokens::es256(&alice())));
    assert_eq!(status, 401);
}

#[test]
fn an_expired_token_is_token_expired() {
    let expired = tokens::good(&tokens::claims("alice", -10, &["*"], &[], &[]));
    let (status, code, _) = refused(hs().verify(&expired));
    assert_eq!((status, code), (401, "token_expired"));
}

#[test]
fn a_token_not_valid_yet_is_unauthorized() {
    let (status, code, message) = refused(hs().verify(&tokens::not_yet_valid(600)));
    assert_eq!((status, code), (401, "unauthorized"));
    assert!(message.contains("not valid yet"), "{message}");
}

#[test]
fn a_huge_token_is_refused_before_decoding() {
    let (status, code, message) = refused(hs().verify(&tokens::huge(100_000)));
    assert_eq!((status, code), (401, "unauthorized"));
    assert!(message.contains("too large"), "{message}");
}

#[test]
fn tokens_without_sub_or_exp_and_garbage_are_unauthorized() {
    let no_exp = tokens::good(&serde_json::json!({"sub": "alice"}));
    assert_eq!(refused(hs().verify(&no_exp)).0, 401);
    let no_sub = tokens::good(&serde_json::json!({"exp": tokens::now_secs() + 60}));
    assert_eq!(refused(hs().verify(&no_sub)).0, 401);
    for garbage in ["", "a", "a.b", "a.b.c", "....", "\u{0}\u{1}"] {
        assert_eq!(refused(hs().verify(garbage)).0, 401, "{garbage:?}");
    }
}

#[test]
fn a_jwks_file_selects_keys_by_kid_and_ignores_symmetric_keys() {
    // The public key's components, through jsonwebtoken's own JWK export.
    let rsa_jwk = {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(tokens::RSA_PRIVATE_PEM).unwrap();
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
        jwk.common.key_id = Some("k1".into());
        jwk
    };
    let set = serde_json::json!({"keys": [
        {"kty": "oct", "k": "c2VjcmV0", "alg": "HS256", "kid": "k0"},
        rsa_jwk,
    ]});
    let v = TokenVerifier::from_public_key(set.to_string().as_bytes()).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(tokens::RSA_PRIVATE_PEM).unwrap();
    let token = jsonwebtoken::encode(&header, &alice(), &key).unwrap();
    assert_eq!(v.verify(&token).unwrap().sub, "alice");
    // The symmetric key was not trusted: HS256 with it is refused.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k0".into());
    let hs = jsonwebtoken::encode(
        &header,
        &alice(),
        &jsonwebtoken::EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    assert_eq!(refused(v.verify(&hs)).0, 401);
    assert!(TokenVerifier::from_public_key(br#"{"keys":[]}"#).is_err());
}

#[test]
fn bad_key_configuration_is_an_error() {
    assert!(matches!(
        TokenVerifier::hs256(b""),
        Err(KeyError::EmptySecret)
    ));
    assert!(TokenVerifier::from_public_key(b"not a key").is_err());
    let missing = TokenVerifier::from_public_key_file(Path::new("/nonexistent/key.pem"));
    assert!(matches!(missing, Err(KeyError::Read { .. })));
}

#[test]
fn minted_tokens_verify() {
    let claims = Claims {
        sub: "bob".into(),
        exp: tokens::now_secs() + 60,
        scopes: vec!["user:{sub}".into()],
        topics: vec![],
        publish: vec![],
    };
    let token = mint_hs256(tokens::SECRET.as_bytes(), &claims).unwrap();
    assert_eq!(hs().verify(&token).unwrap(), claims);
}
