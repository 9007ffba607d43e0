//! How the store reaches PostgreSQL: in the clear, or over TLS.
//!
//! TLS is used when the URL says `sslmode=require` or a CA file is given
//! ([`crate::PgOptions::ca_file`]), and then the server's certificate is
//! always verified, chain and host name, against that CA file or else the
//! system's certificate authorities: a connection that is encrypted but
//! could be a stranger's protects nothing. (libpq's `require` does not
//! verify; its `verify-full` does, and is what this is.) Without either,
//! no TLS is attempted: `sslmode=prefer`, which tokio-postgres assumes when
//! the URL names no mode, is taken as `disable`, since a server that may or
//! may not be spoken to privately is one to be told plainly which.
//!
//! A client certificate ([`ClientCert`]) is presented to servers that
//! authenticate clients by certificate, and turns TLS on as a CA file does.
//!
//! URLs written for libpq work too: `sslmode=verify-full` and `verify-ca`
//! mean what `require` means here, `sslrootcert=PATH` names the CA file,
//! and `sslcert=PATH` with `sslkey=PATH` the client certificate (see
//! [`libpq_tls_options`]); tokio-postgres would refuse them all.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::Error;
use crate::client_cert::{ClientCert, ClientCertFiles};
use crate::watch::{self, Changed};

/// What connections are made with.
#[derive(Clone)]
pub(crate) enum Connector {
    /// In the clear.
    Plain,
    /// TLS, the server verified.
    Tls(MakeRustlsConnect),
}

impl Connector {
    /// The connector `config` asks for, with `ca_file`'s authorities and
    /// presenting `client_cert` when given (either makes TLS required).
    pub(crate) fn new(
        config: &mut Config,
        ca_file: Option<&Path>,
        client_cert: Option<&ClientCert>,
    ) -> Result<Connector, Error> {
        if ca_file.is_some() || client_cert.is_some() {
            config.ssl_mode(SslMode::Require);
        }
        if config.get_ssl_mode() != SslMode::Require {
            return Ok(Connector::Plain);
        }
        let mut roots = rustls::RootCertStore::empty();
        let certs = match ca_file {
            Some(path) => crate::pem::read_certificates(path, "CA file")?,
            None => {
                let found = rustls_native_certs::load_native_certs();
                if found.certs.is_empty() {
                    return Err(Error::Config(format!(
                        "sslmode=require: no certificate authorities found on this system \
                         ({} errors); give the one that signs the server's certificate as a \
                         CA file",
                        found.errors.len()
                    )));
                }
                found.certs
            }
        };
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Error::Config(
                "sslmode=require: none of the CA certificates could be used".into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots);
        let mut tls = match client_cert {
            None => tls.with_no_client_auth(),
            Some(client) => {
                tls.with_client_cert_resolver(Arc::new(ClientCertFiles::load(client, provider)?))
            }
        };
        if client_cert.is_some() {
            // A resumed session skips the certificate, so a renewed (or
            // revoked) one would not be shown until the old session ran
            // out; PostgreSQL resumes no sessions anyway.
            tls.resumption = rustls::client::Resumption::disabled();
        }
        Ok(Connector::Tls(MakeRustlsConnect::new(tls)))
    }

    /// The pool's connection manager.
    pub(crate) fn manager(&self, config: Config, manager: ManagerConfig) -> Manager {
        match self {
            Connector::Plain => Manager::from_config(config, NoTls, manager),
            Connector::Tls(tls) => Manager::from_config(config, tls.clone(), manager),
        }
    }

    /// The listening connection's task (see [`watch::listen`]).
    pub(crate) fn listener(
        &self,
        config: Config,
        channel: String,
        node: String,
        timeout: Duration,
        on_change: Box<dyn Fn(Changed) + Send + Sync>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        match self {
            Connector::Plain => Box::pin(watch::listen(
                config, NoTls, channel, node, timeout, on_change,
            )),
            Connector::Tls(tls) => Box::pin(watch::listen(
                config,
                tls.clone(),
                channel,
                node,
                timeout,
                on_change,
            )),
        }
    }
}

/// The TLS files a libpq URL names that tokio-postgres does not know.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct LibpqFiles {
    /// `sslrootcert=PATH`.
    pub(crate) ca_file: Option<PathBuf>,
    /// `sslcert=PATH` with `sslkey=PATH`.
    pub(crate) client_cert: Option<ClientCert>,
}

/// Takes libpq's TLS options that tokio-postgres does not know out of a
/// URL's query: `sslmode=verify-full` and `sslmode=verify-ca` become
/// `sslmode=require` (which verifies the server here); `sslrootcert=PATH`,
/// `sslcert=PATH` and `sslkey=PATH` are removed and returned (a
/// certificate without its key, or a key without its certificate, is an
/// error). Anything else is left as it was, as is a connection string that
/// is not a URL.
pub(crate) fn libpq_tls_options(url: &str) -> Result<(String, LibpqFiles), Error> {
    let Some((base, query)) = url.split_once('?').filter(|_| url.contains("://")) else {
        return Ok((url.to_owned(), LibpqFiles::default()));
    };
    let mut files = LibpqFiles::default();
    let (mut cert, mut key) = (None, None);
    let mut kept: Vec<String> = Vec::new();
    for pair in query.split('&') {
        let path = |p: &str| Some(PathBuf::from(percent_decoded(p)));
        match pair.split_once('=') {
            Some(("sslrootcert", p)) => files.ca_file = path(p),
            Some(("sslcert", p)) => cert = path(p),
            Some(("sslkey", p)) => key = path(p),
            Some(("sslmode", "verify-full" | "verify-ca")) => kept.push("sslmode=require".into()),
            _ => kept.push(pair.to_owned()),
        }
    }
    files.client_cert = match (cert, key) {
        (Some(cert), Some(key)) => Some(ClientCert { cert, key }),
        (None, None) => None,
        (Some(_), None) => return Err(Error::Config("sslcert= needs sslkey= beside it".into())),
        (None, Some(_)) => return Err(Error::Config("sslkey= needs sslcert= beside it".into())),
    };
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, files))
}

/// `s` with its `%XX` escapes decoded (an escape that is not one is kept).
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_urls_are_understood() {
        let (url, files) = libpq_tls_options(
            "postgres://app@db.example/sync?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=n1",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://app@db.example/sync?sslmode=require&application_name=n1"
        );
        assert_eq!(files.ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(files.client_cert, None);
        let (url, files) = libpq_tls_options("postgres://app@db/sync?sslrootcert=ca.pem").unwrap();
        assert_eq!(
            (url.as_str(), files.ca_file.as_deref()),
            ("postgres://app@db/sync", Some(Path::new("ca.pem")))
        );
        let (url, _) = libpq_tls_options("postgres://app@db/sync?sslmode=verify-ca").unwrap();
        assert_eq!(url, "postgres://app@db/sync?sslmode=require");
        let (url, files) =
            libpq_tls_options("postgres://app@db/sync?sslcert=node.pem&sslkey=%2Fkeys%2Fnode.key")
                .unwrap();
        assert_eq!(url, "postgres://app@db/sync");
        assert_eq!(
            files.client_cert,
            Some(ClientCert {
                cert: "node.pem".into(),
                key: "/keys/node.key".into()
            })
        );
        for half in ["sslcert=node.pem", "sslkey=node.key"] {
            let e = libpq_tls_options(&format!("postgres://app@db/sync?{half}")).unwrap_err();
            assert!(e.to_string().contains("needs"), "{e}");
        }
        for unchanged in [
            "postgres://app@db/sync",
            "postgres://app@db/sync?sslmode=disable&options=-c%20search_path%3Ds",
            "host=db user=app sslmode=require",
        ] {
            assert_eq!(
                libpq_tls_options(unchanged).unwrap(),
                (unchanged.to_owned(), LibpqFiles::default())
            );
        }
        assert_eq!(percent_decoded("a%2"), "a%2");
        assert_eq!(percent_decoded("%zz%41"), "%zzA");
    }
}
