//! The certificate the store shows PostgreSQL when the server authenticates
//! clients by certificate, read again whenever its files change: client
//! certificates are often short-lived and renewed in place by a certificate
//! manager, and a node must not need a restart to show the new one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::sign::CertifiedKey;

use crate::Error;

/// A certificate the store presents to PostgreSQL, and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The PEM certificate chain, the client's own certificate first.
    pub cert: PathBuf,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl ClientCert {
    /// The chain and key, read, checked to belong together, and ready to
    /// sign with.
    fn certified(&self, provider: &CryptoProvider) -> Result<CertifiedKey, Error> {
        let chain = crate::pem::read_certificates(&self.cert, "client certificate")?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| Error::Config(format!("client key {}: {e}", self.key.display())))?;
        CertifiedKey::from_der(chain, key, provider).map_err(|e| {
            Error::Config(format!(
                "client certificate {} with key {}: {e}",
                self.cert.display(),
                self.key.display()
            ))
        })
    }

    /// When the two files were last changed (`None` when either cannot be
    /// looked at).
    fn changed(&self) -> Changed {
        let at = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Some((at(&self.cert)?, at(&self.key)?))
    }
}

/// When a certificate's two files were last changed.
type Changed = Option<(SystemTime, SystemTime)>;

/// The certificate in use, and when its files had last changed then.
#[derive(Debug)]
struct Loaded {
    changed: Changed,
    key: Arc<CertifiedKey>,
}

/// [`ClientCert`] as rustls asks for it at each handshake: read at start
/// (so unusable files stop the store then), and again at a handshake after
/// either file changed. Files that cannot be used then (half replaced, say:
/// a key that does not match its certificate) leave the last good ones in
/// use, with a warning.
#[derive(Debug)]
pub(crate) struct ClientCertFiles {
    files: ClientCert,
    provider: Arc<CryptoProvider>,
    loaded: Mutex<Loaded>,
}

impl ClientCertFiles {
    pub(crate) fn load(files: &ClientCert, provider: Arc<CryptoProvider>) -> Result<Self, Error> {
        let changed = files.changed();
        let key = Arc::new(files.certified(&provider)?);
        Ok(ClientCertFiles {
            files: files.clone(),
            provider,
            loaded: Mutex::new(Loaded { changed, key }),
        })
    }
}

impl ResolvesClientCert for ClientCertFiles {
    fn resolve(&self, _hints: &[&[u8]], schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = self.files.changed();
        if changed.is_some() && changed != loaded.changed {
            match self.files.certified(&self.provider) {
                Ok(key) => {
                    *loaded = Loaded {
                        changed,
                        key: Arc::new(key),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "client certificate unusable; showing the last one read")
                }
            }
        }
        // A key the server cannot verify would only fail the handshake
        // later, less clearly.
        loaded.key.key.choose_scheme(schemes)?;
        Some(Arc::clone(&loaded.key))
    }

    fn has_certs(&self) -> bool {
        true
    }
}
