//! The pure WebSocket handshake rules.

use http::{Method, Request, StatusCode, Version, header};
use live_core::handshake::{OriginPolicy, accept_key, check};

fn upgrade() -> http::request::Builder {
    Request::builder()
        .method(Method::GET)
        .uri("/ws")
        .header(header::HOST, "example.com")
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "keep-alive, Upgrade")
        .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
}

#[test]
fn rfc_6455_example_key() {
    assert_eq!(
        accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    let accept = check(&upgrade().body(()).unwrap(), &OriginPolicy::Any).unwrap();
    assert_eq!(accept.accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    let res = accept.response();
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        res.headers()[header::SEC_WEBSOCKET_ACCEPT],
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert_eq!(res.headers()[header::UPGRADE], "websocket");
}

#[test]
fn bad_headers_are_400() {
    let cases = [
        {
            let mut b = upgrade();
            b.headers_mut().unwrap().remove(header::UPGRADE);
            b
        },
        {
            let mut b = upgrade();
            b.headers_mut()
                .unwrap()
                .insert(header::CONNECTION, "keep-alive".parse().unwrap());
            b
        },
        {
            let mut b = upgrade();
            b.headers_mut().unwrap().remove(header::SEC_WEBSOCKET_KEY);
            b
        },
        {
            let mut b = upgrade();
            b.headers_mut()
                .unwrap()
                .insert(header::SEC_WEBSOCKET_KEY, "c2hvcnQ=".parse().unwrap());
            b
        },
        {
            let mut b = upgrade();
            b.headers_mut().unwrap().insert(
                header::SEC_WEBSOCKET_KEY,
                "not base64 at all!!!!!==".parse().unwrap(),
            );
            b
        },
        upgrade().version(Version::HTTP_10),
        upgrade().version(Version::HTTP_2),
    ];
    for (i, b) in cases.into_iter().enumerate() {
        let req = b.body(()).unwrap();
        let refusal = check(&req, &OriginPolicy::Any).unwrap_err();
        assert_eq!(
            refusal.status,
            StatusCode::BAD_REQUEST,
            "case {i}: {refusal:?}"
        );
    }
}

#[test]
fn a_second_upgrade_value_naming_websocket_is_fine_but_none_is_not() {
    let mut b = upgrade();
    b.headers_mut()
        .unwrap()
        .insert(header::UPGRADE, "h2c".parse().unwrap());
    let refusal = check(&b.body(()).unwrap(), &OriginPolicy::Any).unwrap_err();
    assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
    let ok = upgrade().header(header::UPGRADE, "h2c").body(()).unwrap();
    assert!(check(&ok, &OriginPolicy::Any).is_ok());
}

#[test]
fn wrong_version_is_426_with_the_version_header() {
    for version in [Some("8"), None] {
        let mut b = upgrade();
        b.headers_mut()
            .unwrap()
            .remove(header::SEC_WEBSOCKET_VERSION);
        if let Some(v) = version {
            b = b.header(header::SEC_WEBSOCKET_VERSION, v);
        }
        let refusal = check(&b.body(()).unwrap(), &OriginPolicy::Any).unwrap_err();
        assert_eq!(refusal.status, StatusCode::UPGRADE_REQUIRED);
        assert_eq!(
            refusal.response().headers()[header::SEC_WEBSOCKET_VERSION],
            "13"
        );
    }
}

#[test]
fn non_get_is_405() {
    let req = upgrade().method(Method::POST).body(()).unwrap();
    let refusal = check(&req, &OriginPolicy::Any).unwrap_err();
    assert_eq!(refusal.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refusal.response().headers()[header::ALLOW], "GET");
}

#[test]
fn origin_policies() {
    let from = |origin: &str| upgrade().header(header::ORIGIN, origin).body(()).unwrap();
    let list = OriginPolicy::list(["https://app.example.com"]);
    assert!(check(&from("https://app.example.com"), &list).is_ok());
    assert!(check(&from("HTTPS://APP.EXAMPLE.COM"), &list).is_ok());
    let refusal = check(&from("https://evil.example"), &list).unwrap_err();
    assert_eq!(refusal.status, StatusCode::FORBIDDEN);
    assert_eq!(refusal.response().status(), StatusCode::FORBIDDEN);
    // No Origin header: not a browser, allowed.
    assert!(check(&upgrade().body(()).unwrap(), &list).is_ok());

    let star = OriginPolicy::list(["*"]);
    assert!(check(&from("https://anything"), &star).is_ok());

    let checker = OriginPolicy::checker(|o| o.ends_with(".example.com"));
    assert!(check(&from("https://a.example.com"), &checker).is_ok());
    assert_eq!(
        check(&from("https://example.org"), &checker)
            .unwrap_err()
            .status,
        StatusCode::FORBIDDEN
    );
}
