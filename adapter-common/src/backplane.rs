//! The broker backplane's outside: which broker (`--broker`), and how one
//! publish travels over it. What the server asks of a link
//! ([`BackplaneCommand`]) and which topics cross nodes ([`is_local_only`])
//! are the server core's (`server_core::broker`); the links themselves live
//! in the runtime adapters.

pub use server_core::BackplaneCommand;
pub use server_core::broker::is_local_only;
pub use server_core::{HistoryLimits, HistoryRead, PresenceMember};

use std::path::{Path, PathBuf};

/// Which broker a server's backplane uses (`--broker`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerUrl {
    /// Redis pub/sub, `redis://HOST:PORT`, or `rediss://HOST:PORT` over TLS.
    Redis(String),
    /// NATS core pub/sub, `nats://HOST:PORT`, or `tls://HOST:PORT` over TLS.
    Nats(String),
}

impl BrokerUrl {
    /// The whole URL, credentials included: for the client library only
    /// (`Display` leaves the credentials out).
    pub fn as_str(&self) -> &str {
        match self {
            BrokerUrl::Redis(u) | BrokerUrl::Nats(u) => u,
        }
    }

    /// Whether the URL itself asks for TLS (`rediss://`, `tls://`).
    pub fn asks_for_tls(&self) -> bool {
        let u = self.as_str();
        u.starts_with("rediss://") || u.starts_with("tls://")
    }
}

impl std::str::FromStr for BrokerUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let redacted = redact_userinfo(s);
        if s.starts_with("redis://") || s.starts_with("rediss://") {
            // The Redis client turns certificate checks off for this
            // fragment; a node never talks to a broker it has not verified.
            if s.ends_with("#insecure") {
                return Err(format!(
                    "{redacted}: #insecure (TLS without verifying the server) is not offered; \
                     give the authorities that vouch for the server with --broker-ca-file"
                ));
            }
            Ok(BrokerUrl::Redis(s.to_owned()))
        } else if s.starts_with("nats://") || s.starts_with("tls://") {
            Ok(BrokerUrl::Nats(s.to_owned()))
        } else {
            Err(format!(
                "{redacted:?}: expected redis://HOST:PORT, rediss://HOST:PORT (TLS), \
                 nats://HOST:PORT or tls://HOST:PORT (NATS over TLS)"
            ))
        }
    }
}

/// The URL with its credentials (user, password or token) left out, as
/// logs and errors show it.
impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_userinfo(self.as_str()))
    }
}

/// `scheme://user:secret@host` as `scheme://***@host`: a NATS token is
/// the user part alone, so the whole of it goes.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// A broker and how to reach it: its URL and, for TLS, the authorities
/// that vouch for its certificate.
///
/// TLS is used when the URL asks for it (`rediss://`, `tls://`), or a CA
/// file or a client certificate is given (a `redis://` URL is then taken as
/// `rediss://`, a `nats://` one as requiring TLS). The broker's certificate is always
/// verified, chain and host name: against the CA file when there is one,
/// otherwise against the system's authorities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    url: BrokerUrl,
    ca_file: Option<PathBuf>,
    /// The certificate chain and key shown to a broker that asks for one.
    client_cert: Option<(PathBuf, PathBuf)>,
}

impl Broker {
    /// The broker at `url`, verified (if over TLS) against the system's
    /// authorities.
    pub fn new(url: BrokerUrl) -> Broker {
        Broker {
            url,
            ca_file: None,
            client_cert: None,
        }
    }

    /// Verifies the broker against the PEM certificates in `path` instead
    /// of the system's authorities, and turns TLS on.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Broker {
        self.ca_file = Some(path.into());
        self
    }

    /// Shows the broker the PEM certificate chain at `cert`, with the PEM
    /// private key at `key`, for a broker that authenticates its clients
    /// by certificate; turns TLS on.
    pub fn with_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Broker {
        self.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// The broker's URL.
    pub fn url(&self) -> &BrokerUrl {
        &self.url
    }

    /// The file of authorities the broker is verified against, if any.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The client certificate chain and key shown to the broker, if any.
    pub fn client_cert(&self) -> Option<(&Path, &Path)> {
        self.client_cert
            .as_ref()
            .map(|(cert, key)| (cert.as_path(), key.as_path()))
    }

    /// Whether TLS files are given (a CA file, a client certificate),
    /// which turn TLS on whatever the URL's scheme.
    pub fn has_tls_files(&self) -> bool {
        self.ca_file.is_some() || self.client_cert.is_some()
    }

    /// Whether connections to the broker use TLS.
    pub fn uses_tls(&self) -> bool {
        self.url.asks_for_tls() || self.has_tls_files()
    }
}

impl From<BrokerUrl> for Broker {
    fn from(url: BrokerUrl) -> Broker {
        Broker::new(url)
    }
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.url)?;
        if !self.uses_tls() {
            return Ok(());
        }
        match &self.ca_file {
            Some(ca) => write!(f, " (TLS, verified against {}", ca.display())?,
            None => write!(f, " (TLS, verified against the system's authorities")?,
        }
        match &self.client_cert {
            Some((cert, _)) => write!(f, ", showing {})", cert.display()),
            None => write!(f, ")"),
        }
    }
}

/// What goes over the broker for one publish: the sending node's name, a
/// newline, the raw JSON data. Receivers drop their own messages by name.
pub fn encode_message(node: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(node.len() + 1 + data.len());
    out.extend_from_slice(node.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(data);
    out
}

/// The sending node and the data of a broker message, or `None` when it is
/// not one of ours.
pub fn decode_message(payload: &[u8]) -> Option<(&str, &[u8])> {
    let at = payload.iter().position(|&b| b == b'\n')?;
    let node = std::str::from_utf8(&payload[..at]).ok()?;
    Some((node, &payload[at + 1..]))
}

/// What goes over the broker for a publication it numbered: `#`, the
/// epoch, a space, the offset, a newline, the raw JSON data. A node name
/// never starts with `#`, so the two kinds of message cannot be confused.
pub fn encode_numbered(epoch: &str, offset: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(epoch.len() + 24 + data.len());
    out.push(b'#');
    out.extend_from_slice(epoch.as_bytes());
    out.push(b' ');
    out.extend_from_slice(offset.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(data);
    out
}

/// The epoch, offset and data of a numbered broker message, or `None`
/// when it is not one.
pub fn decode_numbered(payload: &[u8]) -> Option<(&str, u64, &[u8])> {
    let rest = payload.strip_prefix(b"#")?;
    let at = rest.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&rest[..at]).ok()?;
    let (epoch, offset) = head.split_once(' ')?;
    Some((epoch, offset.parse().ok()?, &rest[at + 1..]))
}

/// A member as the broker stores it: `{"session":S,"user":U}`.
pub fn encode_member(member: &PresenceMember) -> String {
    serde_json::json!({"session": member.session, "user": member.user}).to_string()
}

/// A stored member, or `None` when it is not one.
pub fn decode_member(text: &[u8]) -> Option<PresenceMember> {
    let v: serde_json::Value = serde_json::from_slice(text).ok()?;
    let session = v.get("session")?.as_str()?.to_owned();
    let user = match v.get("user")? {
        serde_json::Value::Null => None,
        serde_json::Value::String(u) => Some(u.clone()),
        _ => return None,
    };
    Some(PresenceMember { session, user })
}

/// What goes over the broker for a join or leave: `@`, the sending node's
/// name, a newline, `+` (joined) or `-` (left), the member's JSON.
pub fn encode_presence(node: &str, joined: bool, member: &PresenceMember) -> Vec<u8> {
    let mut out = format!("@{node}\n{}", if joined { '+' } else { '-' }).into_bytes();
    out.extend_from_slice(encode_member(member).as_bytes());
    out
}

/// The node, the change and the member of a presence message, or `None`
/// when it is not one.
pub fn decode_presence(payload: &[u8]) -> Option<(&str, bool, PresenceMember)> {
    let rest = payload.strip_prefix(b"@")?;
    let at = rest.iter().position(|&b| b == b'\n')?;
    let node = std::str::from_utf8(&rest[..at]).ok()?;
    let (joined, member) = match rest.get(at + 1..)?.split_first()? {
        (b'+', m) => (true, m),
        (b'-', m) => (false, m),
        _ => return None,
    };
    Some((node, joined, decode_member(member)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_urls_are_taken_and_credentials_never_shown() {
        let r: BrokerUrl = "rediss://:secret@cache.internal:6380/0".parse().unwrap();
        assert!(matches!(r, BrokerUrl::Redis(_)) && r.asks_for_tls());
        assert_eq!(r.to_string(), "rediss://***@cache.internal:6380/0");
        assert_eq!(r.as_str(), "rediss://:secret@cache.internal:6380/0");
        let n: BrokerUrl = "tls://token@nats.internal:4222".parse().unwrap();
        assert!(matches!(n, BrokerUrl::Nats(_)) && n.asks_for_tls());
        assert_eq!(n.to_string(), "tls://***@nats.internal:4222");
        let plain: BrokerUrl = "nats://h:4222".parse().unwrap();
        assert!(!plain.asks_for_tls());
        assert_eq!(plain.to_string(), "nats://h:4222");
        assert!(!Broker::new(plain.clone()).uses_tls());
        let verified = Broker::new(plain).with_ca_file("ca.pem");
        assert!(verified.uses_tls());
        assert_eq!(
            verified.to_string(),
            "nats://h:4222 (TLS, verified against ca.pem)"
        );
        let shown =
            Broker::new("redis://h:6379".parse().unwrap()).with_client_cert("n.pem", "n.key");
        assert!(shown.uses_tls());
        assert_eq!(
            shown.to_string(),
            "redis://h:6379 (TLS, verified against the system's authorities, showing n.pem)"
        );
        let e = "rediss://:secret@h/#insecure"
            .parse::<BrokerUrl>()
            .unwrap_err();
        assert!(
            e.contains("--broker-ca-file") && !e.contains("secret"),
            "{e}"
        );
        let e = "kafka://u:secret@h".parse::<BrokerUrl>().unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn broker_urls_and_messages_round_trip() {
        assert_eq!(
            "redis://127.0.0.1:6379".parse(),
            Ok(BrokerUrl::Redis("redis://127.0.0.1:6379".into()))
        );
        assert!(matches!("nats://h:4222".parse(), Ok(BrokerUrl::Nats(_))));
        assert!("kafka://h".parse::<BrokerUrl>().is_err());
        let m = encode_message("node-1", br#"{"a":"x\ny"}"#);
        assert_eq!(
            decode_message(&m),
            Some(("node-1", &br#"{"a":"x\ny"}"#[..]))
        );
        assert_eq!(decode_message(b"no newline"), None);
        let n = encode_numbered("9f3c", 42, br#"{"a":1}"#);
        assert_eq!(&n[..], b"#9f3c 42\n{\"a\":1}");
        assert_eq!(decode_numbered(&n), Some(("9f3c", 42, &br#"{"a":1}"#[..])));
        assert_eq!(decode_numbered(b"#e x\n1"), None);
        assert_eq!(decode_numbered(b"node\n1"), None);
        assert_eq!(decode_numbered(b"#e 1"), None);
        let bob = PresenceMember {
            session: "00ff".into(),
            user: Some("bob".into()),
        };
        let p = encode_presence("n1", false, &bob);
        assert_eq!(decode_presence(&p), Some(("n1", false, bob.clone())));
        assert_eq!(decode_presence(b"@n1\n*{}"), None);
        assert_eq!(decode_presence(b"@n1\n+{\"session\":1}"), None);
        assert_eq!(decode_presence(b"n1\n+{}"), None);
        assert_eq!(decode_member(encode_member(&bob).as_bytes()), Some(bob));
        assert!(is_local_only("sync:doc"));
        assert!(!is_local_only("chat"));
    }
}
