//! TLS for the server binaries: the rustls configuration built from a PEM
//! certificate chain and private key (`--tls-cert`, `--tls-key`). Each
//! adapter runs the handshake with its runtime's rustls glue
//! (tokio-rustls, futures-rustls) inside the connection's own task.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use rustls::ServerConfig as TlsConfig;

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate file holds no certificate, or cannot be read.
    #[error("cannot read a PEM certificate chain from {path}: {reason}")]
    Certificate {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The key file holds no private key, or cannot be read.
    #[error("cannot read a PEM private key from {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the pair (a key that does not match the certificate).
    #[error("the certificate and key cannot be used together: {0}")]
    Config(#[from] rustls::Error),
}

/// A server configuration for HTTP/1.1 over TLS 1.2/1.3 with this
/// certificate chain and key, ring as the crypto provider.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<TlsConfig>, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificate {
            path: cert.display().to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certificate {
            path: cert.display().to_string(),
            reason: "no certificate in the file".into(),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = TlsConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, private)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_loads_and_mismatches_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let one = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let other_key = dir.path().join("other.pem");
        std::fs::write(&cert, one.cert.pem()).unwrap();
        std::fs::write(&key, one.signing_key.serialize_pem()).unwrap();
        std::fs::write(&other_key, two.signing_key.serialize_pem()).unwrap();
        assert!(server_config(&cert, &key).is_ok());
        assert!(matches!(
            server_config(&cert, &other_key),
            Err(TlsError::Config(_))
        ));
        assert!(matches!(
            server_config(&key, &key),
            Err(TlsError::Certificate { .. })
        ));
        assert!(matches!(
            server_config(&cert, &dir.path().join("missing.pem")),
            Err(TlsError::Key { .. })
        ));
    }
}
