//! A deliberately small reference server implementing the conformance profile.
//!
//! It exists to check the kit itself: every conformance case must be satisfiable,
//! the clients must cope with a real socket peer (handshake refusals, early closes,
//! a client that stops reading), and the crash driver and load generator need
//! something to run against. It is not the project's server and takes every
//! shortcut a product must not: one global lock, no heartbeats, and durability by
//! rewriting one JSON file (fsync, then rename) before each push is answered.
//! Adapter authors may read it as an executable statement of the profile.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::conformance::{BoxFuture, ServerUnderTest};
use crate::profile::{self, Profile};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

type Resp = Response<Full<Bytes>>;

struct Session {
    tx: mpsc::UnboundedSender<Message>,
    queued_msgs: Arc<AtomicUsize>,
    queued_bytes: Arc<AtomicUsize>,
    kill: mpsc::UnboundedSender<()>,
}

#[derive(Default, Serialize, Deserialize)]
struct Scope {
    log: Vec<(u64, u64, Value)>, // (cursor, mutation number, change)
    trimmed_before: u64,
    kv: BTreeMap<String, Value>,
    next: u64,
}

/// Everything a restart must find again.
#[derive(Default, Serialize, Deserialize)]
struct Durable {
    scopes: BTreeMap<String, Scope>,
    seqs: BTreeMap<String, (u64, BTreeMap<u64, Value>)>,
    ids: BTreeMap<String, Value>,
    mutation_no: u64,
}

#[derive(Default)]
struct State {
    sessions: HashMap<u64, Session>,
    topics: BTreeMap<String, BTreeMap<u64, ()>>,
    d: Durable,
}

struct Shared {
    profile: Profile,
    state: Mutex<State>,
    next_session: AtomicU64,
    db: Option<PathBuf>,
}

impl Shared {
    /// Writes the durable state (temp file, fsync, rename) before anything that
    /// depends on it is answered.
    fn persist(&self, d: &Durable) {
        let Some(path) = &self.db else { return };
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(
                &mut f,
                &serde_json::to_vec(d).map_err(std::io::Error::other)?,
            )?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            // Without durability the reference must not answer at all.
            eprintln!(
                "reference server: cannot persist to {}: {e}",
                path.display()
            );
            std::process::abort();
        }
    }
}

fn load(path: &Path) -> std::io::Result<Durable> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Durable::default()),
        Err(e) => Err(e),
    }
}

/// A running reference server; dropping it stops accepting connections.
pub struct Reference {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Reference {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ServerUnderTest for Reference {
    fn ws_url(&self) -> String {
        format!("ws://{}{}", self.addr, self.shared.profile.ws_path)
    }
    fn http_base(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn trim<'a>(&'a self, scope: &'a str, before: u64) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let mut st = self.shared.state.lock().unwrap();
            let sc = st.d.scopes.entry(scope.to_owned()).or_default();
            sc.log.retain(|(c, _, _)| *c >= before);
            sc.trimmed_before = sc.trimmed_before.max(before);
            self.shared.persist(&st.d);
            Ok(())
        })
    }
}

/// Starts an in-memory reference server on a free loopback port: the start
/// function for [`conformance_suite!`](crate::conformance_suite).
pub async fn start(profile: Profile) -> Box<dyn ServerUnderTest> {
    Box::new(
        serve(profile, "127.0.0.1:0", None)
            .await
            .expect("bind a loopback port"),
    )
}

/// Serves `profile` on `addr`, keeping its sync state in the JSON file `db` (if
/// given, loaded at start) and answering nothing before it is written there.
pub async fn serve(
    profile: Profile,
    addr: &str,
    db: Option<PathBuf>,
) -> std::io::Result<Reference> {
    let durable = match &db {
        Some(p) => load(p)?,
        None => Durable::default(),
    };
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let state = Mutex::new(State {
        d: durable,
        ..State::default()
    });
    let shared = Arc::new(Shared {
        profile,
        state,
        next_session: AtomicU64::new(1),
        db,
    });
    let s = shared.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let s = s.clone();
                    async move { Ok::<_, Infallible>(handle(s, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Ok(Reference { addr, shared, task })
}

impl Reference {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn reply(status: u16, body: Value) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn err(status: u16, code: &str, msg: &str) -> (u16, Value) {
    (status, json!({"code": code, "error": msg}))
}

async fn handle(s: Arc<Shared>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    if path == s.profile.ws_path {
        return upgrade(s, req).await;
    }
    let Some(op) = path
        .strip_prefix(s.profile.sync_prefix)
        .and_then(|p| p.strip_prefix('/'))
    else {
        return reply(404, json!({"code": "not_found", "error": "no route"}));
    };
    let op = op.to_owned();
    let user = match profile::authenticate(req.headers(), query.as_deref()) {
        Ok(u) => u,
        Err(_) => return reply(401, json!({"code": "unauthorized", "error": "no token"})),
    };
    let get = req.method() == http::Method::GET;
    let declared: Option<usize> = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let mut incoming = req.into_body();
    let mut body = Vec::new();
    let mut over = declared.is_some_and(|n| n > s.profile.http_body_limit);
    while !over {
        let Some(Ok(frame)) = incoming.frame().await else {
            break;
        };
        if let Some(data) = frame.data_ref() {
            body.extend_from_slice(data);
        }
        over = body.len() > s.profile.http_body_limit;
    }
    if over {
        // Answer now; read the rest beside the answer so the client can
        // finish sending and read it on a connection that stays usable.
        tokio::spawn(async move { while let Some(Ok(_)) = incoming.frame().await {} });
        return reply(
            413,
            json!({"code": "payload_too_large", "error": "body too large"}),
        );
    }
    let body: Value = if get {
        match query_body(query.as_deref().unwrap_or("")) {
            Some(v) => v,
            None => {
                return reply(
                    400,
                    json!({"code": "invalid_mutation", "error": "bad query"}),
                );
            }
        }
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => {
                return reply(
                    400,
                    json!({"code": "invalid_mutation", "error": "invalid json"}),
                );
            }
        }
    };
    let (status, body) = sync_op(&s, &user, &op, &body);
    reply(status, body)
}

fn query_body(q: &str) -> Option<Value> {
    let mut body = json!({});
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = v.replace("%3A", ":").replace("%3a", ":");
        match k {
            "scope" => body["scope"] = json!(v),
            "cursor" | "limit" => body[k] = json!(v.parse::<u64>().ok()?),
            _ => {}
        }
    }
    Some(body)
}

fn sync_op(s: &Shared, user: &str, op: &str, body: &Value) -> (u16, Value) {
    match op {
        "push" => push(s, user, body),
        "pull" => pull(s, user, body),
        "snapshot" => {
            let scope = body["scope"].as_str().unwrap_or("_default");
            if !profile::scope_allowed(user, scope) {
                return err(403, "forbidden", "scope not allowed");
            }
            let st = s.state.lock().unwrap();
            let (data, cursor) =
                st.d.scopes
                    .get(scope)
                    .map_or((json!({}), 0), |sc| (json!(sc.kv), sc.next));
            (200, json!({"data": data, "cursor": cursor}))
        }
        _ => err(404, "not_found", "unknown op"),
    }
}

fn push(s: &Shared, user: &str, body: &Value) -> (u16, Value) {
    let Some(muts) = body.as_array().or_else(|| body["mutations"].as_array()) else {
        return err(400, "invalid_mutation", "no mutations");
    };
    if muts.is_empty() || muts.len() > s.profile.push_batch_max {
        return err(400, "invalid_mutation", "bad batch size");
    }
    for m in muts {
        if !m["id"].is_string() || !m["name"].is_string() {
            return err(400, "invalid_mutation", "mutation needs id and name");
        }
        if !profile::scope_allowed(user, m["scope"].as_str().unwrap_or("_default")) {
            return err(403, "forbidden", "scope not allowed");
        }
    }
    let mut pokes = BTreeMap::new();
    let mut results = Vec::new();
    {
        let mut st = s.state.lock().unwrap();
        for m in muts {
            let scope = m["scope"].as_str().unwrap_or("_default").to_owned();
            let id = m["id"].as_str().unwrap_or_default().to_owned();
            if let (Some(client), Some(seq)) = (m["client_id"].as_str(), m["seq"].as_u64()) {
                let (last, stored) = st.d.seqs.get(client).cloned().unwrap_or_default();
                if seq <= last {
                    results.push(stored.get(&seq).cloned().unwrap_or(json!({"ok": false})));
                    continue;
                }
                if seq > last + 1 {
                    results.push(json!({"ok": false, "code": "conflict", "error": "sequence gap"}));
                    continue;
                }
                let r = apply(&mut st, &scope, m);
                let e = st.d.seqs.entry(client.to_owned()).or_default();
                e.0 = seq;
                e.1.insert(seq, r.clone());
                if r["ok"] == true {
                    pokes.insert(scope, r["cursor"].as_u64().unwrap_or(0));
                }
                results.push(r);
            } else if let Some(r) = st.d.ids.get(&id) {
                results.push(r.clone());
            } else {
                let r = apply(&mut st, &scope, m);
                st.d.ids.insert(id, r.clone());
                if r["ok"] == true {
                    pokes.insert(scope, r["cursor"].as_u64().unwrap_or(0));
                }
                results.push(r);
            }
        }
        s.persist(&st.d);
    }
    for (scope, cursor) in pokes {
        publish(s, &format!("sync:{scope}"), &json!({"cursor": cursor}));
    }
    (200, json!({ "results": results }))
}

fn apply(st: &mut State, scope: &str, m: &Value) -> Value {
    let st = &mut st.d;
    let entries: Vec<(String, Option<Value>)> = match m["name"].as_str().unwrap_or_default() {
        "put" => vec![(
            m["args"]["key"].as_str().unwrap_or_default().to_owned(),
            Some(m["args"]["value"].clone()),
        )],
        "delete" => vec![(
            m["args"]["key"].as_str().unwrap_or_default().to_owned(),
            None,
        )],
        profile::PUT_MANY => match profile::put_many_entries(&m["args"]) {
            Ok(es) => es.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            Err(e) => return json!({"ok": false, "code": "invalid_mutation", "error": e}),
        },
        _ => return json!({"ok": false, "code": "not_found", "error": "unknown mutator"}),
    };
    st.mutation_no += 1;
    let no = st.mutation_no;
    let sc = st.scopes.entry(scope.to_owned()).or_default();
    let mut changes = Vec::new();
    for (key, value) in entries {
        sc.next += 1;
        let data = match &value {
            Some(v) => {
                sc.kv.insert(key.clone(), v.clone());
                json!({"op": "put", "key": key, "value": v})
            }
            None => {
                sc.kv.remove(&key);
                // The same change shape as sync-core's KvApp, so a replica
                // running that app can follow this server.
                json!({"op": "del", "key": key})
            }
        };
        // RFC 3339, as go-mizu's time.Time (and sync-core's Timestamp) writes it.
        let change = json!({"cursor": sc.next, "scope": scope, "time": "1970-01-01T00:00:00Z", "data": data});
        sc.log.push((sc.next, no, change.clone()));
        changes.push(change);
    }
    json!({"ok": true, "cursor": sc.next})
}

fn pull(s: &Shared, user: &str, body: &Value) -> (u16, Value) {
    let scope = body["scope"].as_str().unwrap_or("_default");
    let Some(cursor) = (if body.get("cursor").is_none() {
        Some(0)
    } else {
        body["cursor"].as_u64()
    }) else {
        return err(400, "invalid_mutation", "bad cursor");
    };
    if !profile::scope_allowed(user, scope) {
        return err(403, "forbidden", "scope not allowed");
    }
    let limit = body["limit"]
        .as_u64()
        .filter(|l| *l > 0)
        .map_or(s.profile.pull_limit_default, |l| {
            (l as usize).min(s.profile.pull_limit_max)
        });
    let st = s.state.lock().unwrap();
    let empty = Scope::default();
    let sc = st.d.scopes.get(scope).unwrap_or(&empty);
    if sc.trimmed_before > 0 && cursor + 1 < sc.trimmed_before {
        return err(410, "cursor_too_old", "cursor trimmed");
    }
    let rest: Vec<&(u64, u64, Value)> = sc.log.iter().filter(|(c, _, _)| *c > cursor).collect();
    let mut page = Vec::new();
    for (i, (_, no, ch)) in rest.iter().enumerate() {
        if page.len() >= limit && rest[i - 1].1 != *no {
            break;
        }
        page.push(ch.clone());
    }
    let has_more = page.len() < rest.len();
    let next = page
        .last()
        .and_then(|c| c["cursor"].as_u64())
        .unwrap_or(cursor);
    (
        200,
        json!({"changes": page, "has_more": has_more, "next_cursor": next}),
    )
}

fn publish(s: &Shared, topic: &str, data: &Value) {
    let frame = json!({"topic": topic, "data": data}).to_string();
    let st = s.state.lock().unwrap();
    let Some(subs) = st.topics.get(topic) else {
        return;
    };
    for id in subs.keys() {
        if let Some(sess) = st.sessions.get(id) {
            send(s, sess, frame.clone());
        }
    }
}

fn send(s: &Shared, sess: &Session, frame: String) {
    let n = sess.queued_msgs.fetch_add(1, Ordering::SeqCst) + 1;
    let b = sess.queued_bytes.fetch_add(frame.len(), Ordering::SeqCst) + frame.len();
    if n > s.profile.send_queue_messages || b > s.profile.send_queue_bytes {
        let _ = sess.kill.send(());
        return;
    }
    let _ = sess.tx.send(Message::text(frame));
}

async fn upgrade(s: Arc<Shared>, req: Request<Incoming>) -> Resp {
    let h = req.headers();
    if h.get("sec-websocket-version").and_then(|v| v.to_str().ok()) != Some("13") {
        return Response::builder()
            .status(426)
            .header("sec-websocket-version", "13")
            .body(Full::new(Bytes::new()))
            .unwrap();
    }
    if !profile::origin_allowed(&s.profile, h.get("origin").and_then(|v| v.to_str().ok())) {
        return reply(403, json!({"error": "origin"}));
    }
    let Ok(user) = profile::authenticate(h, req.uri().query()) else {
        return reply(401, json!({"error": "auth"}));
    };
    let Some(key) = h
        .get("sec-websocket-key")
        .map(|k| derive_accept_key(k.as_bytes()))
    else {
        return reply(400, json!({"error": "key"}));
    };
    tokio::spawn(async move {
        if let Ok(up) = hyper::upgrade::on(req).await {
            let config = WebSocketConfig::default()
                .max_message_size(Some(s.profile.read_limit))
                .max_frame_size(Some(s.profile.read_limit));
            let ws = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, Some(config))
                .await;
            session(s, user, ws).await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", key)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn session<S>(s: Arc<Shared>, user: String, ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let id = s.next_session.fetch_add(1, Ordering::SeqCst);
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let (kill_tx, mut kill_rx) = mpsc::unbounded_channel::<()>();
    let queued_msgs = Arc::new(AtomicUsize::new(0));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    s.state.lock().unwrap().sessions.insert(
        id,
        Session {
            tx: tx.clone(),
            queued_msgs: queued_msgs.clone(),
            queued_bytes: queued_bytes.clone(),
            kill: kill_tx,
        },
    );
    let (mut sink, mut stream) = ws.split();
    let mut writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let len = m.len();
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
            queued_msgs.fetch_sub(1, Ordering::SeqCst);
            queued_bytes.fetch_sub(len, Ordering::SeqCst);
        }
        let _ = sink.close().await;
    });
    loop {
        let next = tokio::select! {
            _ = kill_rx.recv() => {
                // Slow consumer: drop the connection without waiting on its socket.
                writer.abort();
                break;
            }
            n = stream.next() => n,
        };
        let text = match next {
            Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
            Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => continue,
            Some(Err(_)) => {
                let frame = CloseFrame {
                    code: 1009.into(),
                    reason: "message too big".into(),
                };
                let _ = tx.send(Message::Close(Some(frame)));
                // Keep reading until the client answers the close, so it can read ours.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                    while let Some(Ok(_)) = stream.next().await {}
                })
                .await;
                break;
            }
        };
        handle_frame(&s, id, &user, &text);
    }
    {
        let mut st = s.state.lock().unwrap();
        st.sessions.remove(&id);
        for subs in st.topics.values_mut() {
            subs.remove(&id);
        }
    }
    drop(tx);
    if tokio::time::timeout(std::time::Duration::from_secs(2), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

fn to_self(s: &Shared, id: u64, v: &Value) {
    let st = s.state.lock().unwrap();
    if let Some(sess) = st.sessions.get(&id) {
        send(s, sess, v.to_string());
    }
}

fn handle_frame(s: &Shared, id: u64, user: &str, text: &str) {
    let Ok(env) = serde_json::from_str::<Value>(text) else {
        return to_self(
            s,
            id,
            &profile::error_frame("invalid_json", "malformed JSON"),
        );
    };
    let Some(topic) = env.get("topic").and_then(Value::as_str) else {
        return to_self(
            s,
            id,
            &profile::error_frame("invalid_message", "missing topic"),
        );
    };
    let data = env.get("data").cloned().unwrap_or(Value::Null);
    match topic {
        "subscribe" | "unsubscribe" | "publish" => {
            let Some(t) = data.get("topic").and_then(Value::as_str) else {
                return to_self(
                    s,
                    id,
                    &profile::error_frame("invalid_command", "missing topic"),
                );
            };
            match topic {
                "subscribe" if !profile::may_subscribe(user, t) => {
                    to_self(s, id, &profile::error_frame("forbidden", "topic forbidden"))
                }
                "subscribe" => {
                    s.state
                        .lock()
                        .unwrap()
                        .topics
                        .entry(t.to_owned())
                        .or_default()
                        .insert(id, ());
                }
                "unsubscribe" => {
                    if let Some(subs) = s.state.lock().unwrap().topics.get_mut(t) {
                        subs.remove(&id);
                    }
                }
                _ if !profile::may_publish(user, t) => {
                    to_self(s, id, &profile::error_frame("forbidden", "topic forbidden"))
                }
                _ => publish(s, t, &data.get("data").cloned().unwrap_or(Value::Null)),
            }
        }
        "_sync" => {
            let (status, body) = sync_op(s, user, data["op"].as_str().unwrap_or(""), &data["body"]);
            to_self(
                s,
                id,
                &json!({"topic": "_sync", "data": {"rid": data["rid"], "status": status, "body": body}}),
            );
        }
        _ => to_self(s, id, &profile::on_message_reply(topic, &data)),
    }
}
