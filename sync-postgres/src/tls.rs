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

use std::path::Path;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::Error;

/// What connections are made with.
#[derive(Clone)]
pub(crate) enum Connector {
    /// In the clear.
    Plain,
    /// TLS, the server verified.
    Tls(MakeRustlsConnect),
}

impl Connector {
    /// The connector `config` asks for, with `ca_file`'s authorities when
    /// given (which makes TLS required).
    pub(crate) fn new(config: &mut Config, ca_file: Option<&Path>) -> Result<Connector, Error> {
        if ca_file.is_some() {
            config.ssl_mode(SslMode::Require);
        }
        if config.get_ssl_mode() != SslMode::Require {
            return Ok(Connector::Plain);
        }
        let mut roots = rustls::RootCertStore::empty();
        let certs = match ca_file {
            Some(path) => read_pem(path)?,
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
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Connector::Tls(MakeRustlsConnect::new(tls)))
    }

    /// The pool's connection manager.
    pub(crate) fn manager(&self, config: Config, manager: ManagerConfig) -> Manager {
        match self {
            Connector::Plain => Manager::from_config(config, NoTls, manager),
            Connector::Tls(tls) => Manager::from_config(config, tls.clone(), manager),
        }
    }
}

/// The certificates of the PEM file at `path`.
fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::Config(format!("CA file {}: {e}", path.display())))?
        .collect();
    let certs = certs.map_err(|e| Error::Config(format!("CA file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "CA file {}: no certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}
