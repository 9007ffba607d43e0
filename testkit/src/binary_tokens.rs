//! The stock binary locked with signed tokens, end to end: protected mode,
//! every hostile token answered 401 with its JSON code, claims deciding
//! scopes and topics (403 / `forbidden`), in-band refresh and the close at
//! expiry. Run by [`crate::server_binary_suite!`] for each adapter's binary.

use std::process::Stdio;
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::binary_process::{free_port, start};
use crate::http_client::{HttpConn, HttpResponse};
use crate::sync_client::{SyncHttp, push_body, put};
use crate::tokens;
use crate::ws_client::{ConnectError, ConnectOptions, TokenPlacement, WsClient};

fn code(r: &HttpResponse) -> String {
    r.json()["code"].as_str().unwrap_or_default().to_owned()
}

async fn connect(
    addr: &str,
    token: &str,
    placement: TokenPlacement,
) -> Result<WsClient, ConnectError> {
    let opts = ConnectOptions {
        token: Some((token.to_owned(), placement)),
        ..ConnectOptions::default()
    };
    WsClient::connect(&format!("ws://{addr}/ws"), &opts).await
}

/// A `_sync` pull on `scope` and its answer's status: every frame sent
/// before has been handled once it is back.
async fn barrier(ws: &mut WsClient, scope: &str) -> (u64, Vec<Value>) {
    ws.send(&json!({"topic":"_sync","data":{"rid":"b","op":"pull","body":{"scope":scope}}}))
        .await;
    let (reply, before) = ws.recv_topic("_sync").await;
    (reply["data"]["status"].as_u64().unwrap_or_default(), before)
}

fn errors(frames: &[Value]) -> Vec<(String, String)> {
    frames
        .iter()
        .filter(|f| f["topic"] == "error")
        .map(|f| {
            let d = &f["data"];
            (
                d["code"].as_str().unwrap_or_default().to_owned(),
                d["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// On an address other machines can reach, the binary refuses to start
/// without authentication and names both ways out; `--allow-anonymous`
/// is such a way.
pub async fn protected_mode_refuses_a_public_address_without_auth(exe: &str) {
    let port = free_port().await;
    let addr = format!("0.0.0.0:{port}");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(exe)
            .args(["--addr", &addr, "--memory"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the server refuses at once")
    .expect("run the server");
    assert!(
        !out.status.success(),
        "it must not serve {addr} unprotected"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--jwt-secret"), "{stderr}");
    assert!(stderr.contains("--allow-anonymous"), "{stderr}");

    let open = start(exe, &["--memory", "--allow-anonymous"]).await;
    drop(open);
    let locked = start(exe, &["--memory", "--jwt-secret", tokens::SECRET]).await;
    drop(locked);
}

/// With `--jwt-secret`: no token, a forged signature, `alg: none`, an
/// expired, a not-yet-valid and a huge token are each 401 with their code,
/// on sync requests and on the upgrade; a good token in the header, the
/// query or a cookie gets in.
pub async fn hostile_tokens_are_refused_with_401_and_their_code(exe: &str) {
    let srv = start(exe, &["--memory", "--jwt-secret", tokens::SECRET]).await;
    let base = format!("http://{}", srv.addr);
    let alice = tokens::claims("alice", 3600, &["a"], &["chat"], &[]);
    let hostile = [
        (None, "unauthorized"),
        (Some(tokens::forged(&alice)), "unauthorized"),
        (Some(tokens::alg_none(&alice)), "unauthorized"),
        (
            Some(tokens::hs256("another-secret", &alice)),
            "unauthorized",
        ),
        (Some(tokens::rs256(&alice)), "unauthorized"),
        (
            Some(tokens::good(&tokens::claims(
                "alice",
                -60,
                &["a"],
                &[],
                &[],
            ))),
            "token_expired",
        ),
        (Some(tokens::not_yet_valid(600)), "unauthorized"),
        (Some(tokens::huge(64 * 1024)), "unauthorized"),
    ];
    for (token, expected) in &hostile {
        let mut sync = SyncHttp::new(&base, "/_sync", token.as_deref()).unwrap();
        let r = sync
            .push(&push_body(&[put("m1", "a", "k", json!(1))]))
            .await
            .unwrap();
        assert_eq!(
            (r.status.as_u16(), code(&r)),
            (401, expected.to_string()),
            "{}",
            r.text()
        );
        let r = sync.pull("a", 0, None).await.unwrap();
        assert_eq!(r.status, 401, "{}", r.text());
        if let Some(t) = token {
            let refused = connect(&srv.addr, t, TokenPlacement::Header).await;
            assert!(
                matches!(refused, Err(ConnectError::Refused { status }) if status == 401),
                "{expected}: {:?}",
                refused.err()
            );
        }
    }
    let anonymous =
        WsClient::connect(&format!("ws://{}/ws", srv.addr), &ConnectOptions::default()).await;
    assert!(
        matches!(anonymous, Err(ConnectError::Refused { status }) if status == 401),
        "an upgrade without a token: {:?}",
        anonymous.err()
    );
    let mut http = HttpConn::new(&base).unwrap();
    let r = http
        .request(Method::GET, "/healthz", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "health needs no token");

    // Nothing refused reached the data; a good token does, in each place.
    let good = tokens::good(&alice);
    for placement in [
        TokenPlacement::Header,
        TokenPlacement::Query,
        TokenPlacement::Cookie,
    ] {
        let mut ws = connect(&srv.addr, &good, placement)
            .await
            .expect("good token");
        let (status, _) = barrier(&mut ws, "a").await;
        assert_eq!(status, 200);
        ws.close().await;
    }
    let mut sync = SyncHttp::new(&base, "/_sync", Some(&good)).unwrap();
    let snap = sync.snapshot("a").await.unwrap();
    assert_eq!(
        (snap.status.as_u16(), snap.json()["cursor"].clone()),
        (200, json!(0)),
        "{}",
        snap.text()
    );
}

/// A token for scope A is refused on scope B (push, pull, snapshot: 403
/// `forbidden`; subscribing to `sync:B`: a `forbidden` error frame), and
/// topics follow `topics` and `publish`.
pub async fn claims_decide_scopes_and_topics(exe: &str) {
    let srv = start(exe, &["--memory", "--jwt-secret", tokens::SECRET]).await;
    let base = format!("http://{}", srv.addr);
    let token = tokens::good(&tokens::claims(
        "alice",
        3600,
        &["user:{sub}"],
        &["chat:*"],
        &["chat:general"],
    ));
    let mut sync = SyncHttp::new(&base, "/_sync", Some(&token)).unwrap();
    let r = sync
        .push(&push_body(&[put("m1", "user:alice", "k", json!(1))]))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = sync
        .push(&push_body(&[put("m2", "user:bob", "k", json!(2))]))
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (403, "forbidden".to_owned()),
        "{}",
        r.text()
    );
    let r = sync.pull("user:bob", 0, None).await.unwrap();
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (403, "forbidden".to_owned()),
        "{}",
        r.text()
    );
    let r = sync.snapshot("user:bob").await.unwrap();
    assert_eq!(
        (r.status.as_u16(), code(&r)),
        (403, "forbidden".to_owned()),
        "{}",
        r.text()
    );
    let r = sync.pull("user:alice", 0, None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["changes"].as_array().map(Vec::len), Some(1));

    let mut ws = connect(&srv.addr, &token, TokenPlacement::Header)
        .await
        .unwrap();
    for topic in ["sync:user:bob", "sync:user:alice", "chat:general", "news"] {
        ws.subscribe(topic).await;
    }
    ws.publish("chat:random", json!("no")).await;
    ws.publish("chat:general", json!("yes")).await;
    ws.send(&json!({"topic":"_sync","data":{"rid":1,"op":"pull","body":{"scope":"user:bob"}}}))
        .await;
    let (reply, before) = ws.recv_topic("_sync").await;
    assert_eq!(reply["data"]["status"], json!(403), "{reply}");
    let refused = errors(&before);
    let named = |t: &str| {
        refused
            .iter()
            .any(|(c, m)| c == "forbidden" && m.contains(t))
    };
    assert!(
        named("sync:user:bob") && named("news") && named("chat:random"),
        "{refused:?}"
    );
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(
        before
            .iter()
            .any(|f| f["topic"] == "chat:general" && f["data"] == "yes"),
        "an allowed publish is delivered to the allowed subscription: {before:?}"
    );
    ws.close().await;
}

/// With `--jwt-public-key`: RS256 tokens get in; an HS256 token "signed"
/// with the public key and `alg: none` do not.
pub async fn a_public_key_refuses_algorithm_confusion(exe: &str) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, tokens::RSA_PUBLIC_PEM).unwrap();
    let srv = start(
        exe,
        &["--memory", "--jwt-public-key", key.to_str().unwrap()],
    )
    .await;
    let base = format!("http://{}", srv.addr);
    let alice = tokens::claims("alice", 3600, &["a"], &[], &[]);
    for (token, status) in [
        (tokens::rs256(&alice), 200),
        (tokens::hs256_with_public_key(&alice), 401),
        (tokens::alg_none(&alice), 401),
        (tokens::es256(&alice), 401),
    ] {
        let mut sync = SyncHttp::new(&base, "/_sync", Some(&token)).unwrap();
        let r = sync.snapshot("a").await.unwrap();
        assert_eq!(r.status, status, "{}", r.text());
    }
}

/// A session refreshes its token in-band: the new claims replace the old
/// (a subscription they no longer allow ends with a `forbidden` frame), a
/// refused refresh says why, and a token left to expire closes its session
/// with 4001.
pub async fn tokens_refresh_in_band_and_expiry_closes_with_4001(exe: &str) {
    let srv = start(exe, &["--memory", "--jwt-secret", tokens::SECRET]).await;
    let first = tokens::good(&tokens::claims("alice", 3600, &["a"], &["x", "y"], &[]));
    let mut ws = connect(&srv.addr, &first, TokenPlacement::Query)
        .await
        .unwrap();
    ws.subscribe("x").await;
    ws.subscribe("y").await;
    let second = tokens::good(&tokens::claims("alice", 3600, &["a"], &["x"], &[]));
    ws.send(&json!({"topic":"refresh","data":{"token":second}}))
        .await;
    let (ack, before) = ws.recv_topic("refresh").await;
    assert_eq!(ack["data"]["ok"], json!(true), "{ack}");
    let ended = errors(&before);
    assert_eq!(ended.len(), 1, "{before:?}");
    assert!(
        ended[0].0 == "forbidden" && ended[0].1.contains(" y "),
        "{ended:?}"
    );

    for (bad, expected) in [
        (
            tokens::forged(&tokens::claims("alice", 3600, &["*"], &["*"], &[])),
            "unauthorized",
        ),
        (
            tokens::good(&tokens::claims("alice", -5, &["*"], &[], &[])),
            "token_expired",
        ),
    ] {
        ws.send(&json!({"topic":"refresh","data":{"token":bad}}))
            .await;
        let (status, before) = barrier(&mut ws, "a").await;
        assert_eq!(status, 200, "the session stays open with its token");
        let refused = errors(&before);
        assert_eq!(refused.len(), 1, "{before:?}");
        assert_eq!(refused[0].0, expected);
    }
    ws.close().await;

    // A token valid for two more seconds: the server closes the session when
    // it expires (the wait ends on the close, whenever it comes).
    let short = tokens::good(&tokens::claims("alice", 2, &["a"], &["x"], &[]));
    let mut ws = connect(&srv.addr, &short, TokenPlacement::Header)
        .await
        .unwrap();
    let (code, _) = ws.recv_until_closed().await;
    assert_eq!(code, Some(4001));
}

/// Sync requests over `--max-sync-requests-per-second` from one user are
/// answered 429 `rate_limited` and counted in `/metrics`; another user is
/// not slowed.
pub async fn sync_requests_over_the_rate_are_429(exe: &str) {
    let srv = start(
        exe,
        &[
            "--memory",
            "--jwt-secret",
            tokens::SECRET,
            "--max-sync-requests-per-second",
            "1",
        ],
    )
    .await;
    let base = format!("http://{}", srv.addr);
    let greedy = tokens::good(&tokens::claims("greedy", 3600, &["*"], &[], &[]));
    let mut sync = SyncHttp::new(&base, "/_sync", Some(&greedy)).unwrap();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = sync.snapshot("a").await.unwrap();
        if r.status == 429 {
            assert_eq!(code(&r), "rate_limited", "{}", r.text());
        }
        statuses.push(r.status.as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let calm = tokens::good(&tokens::claims("calm", 3600, &["*"], &[], &[]));
    let mut other = SyncHttp::new(&base, "/_sync", Some(&calm)).unwrap();
    assert_eq!(other.snapshot("a").await.unwrap().status, 200);
    let mut http = HttpConn::new(&base).unwrap();
    let m = http
        .request(Method::GET, "/metrics", &[], "")
        .await
        .unwrap()
        .text();
    let refused = m.lines().find_map(|l| {
        l.strip_prefix("limit_sync_requests_refused_total ")?
            .parse::<u64>()
            .ok()
    });
    assert!(refused.is_some_and(|n| n >= 1), "{m}");
}
