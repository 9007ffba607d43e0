//! The TLS files of a broker link, read and checked at start so that an
//! unusable one stops the node with its name instead of failing every
//! connection later: the authorities the broker is verified against
//! (`--broker-ca-file`) and the certificate shown to it
//! (`--broker-client-cert`, `--broker-client-key`).

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::BrokerError;

/// The PEM text of `path`, once it is known to hold at least one
/// certificate; `flag` names the file in errors.
fn read_certificates(flag: &'static str, path: &Path) -> Result<Vec<u8>, BrokerError> {
    let refuse = refusal(flag, path);
    let pem = std::fs::read(path).map_err(|e| refuse(e.to_string()))?;
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| refuse(format!("not a PEM certificate: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(refuse("holds no PEM certificate".into()));
    }
    Ok(pem)
}

fn refusal<'a>(flag: &'static str, path: &'a Path) -> impl Fn(String) -> BrokerError + 'a {
    move |reason| BrokerError::TlsFile {
        flag,
        path: path.display().to_string(),
        reason,
    }
}

/// The PEM text of the authorities' file at `path`.
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<u8>, BrokerError> {
    read_certificates("--broker-ca-file", path)
}

/// The PEM texts of the client certificate chain at `cert` and its private
/// key at `key`, once both are known to hold what they should.
pub(crate) fn read_client_cert(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), BrokerError> {
    let chain = read_certificates("--broker-client-cert", cert)?;
    let refuse = refusal("--broker-client-key", key);
    let pem = std::fs::read(key).map_err(|e| refuse(e.to_string()))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| refuse(format!("no PEM private key: {e}")))?;
    Ok((chain, pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_without_what_they_should_hold_are_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("broker-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = read_ca_file(&empty).unwrap_err().to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
        let missing = dir.join("missing.pem");
        let e = read_ca_file(&missing).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let good = dir.join("ca.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        assert_eq!(read_ca_file(&good).unwrap(), ca.cert.pem().into_bytes());
        let key = dir.join("node.key");
        std::fs::write(&key, ca.signing_key.serialize_pem()).unwrap();
        let (chain, read_key) = read_client_cert(&good, &key).unwrap();
        assert_eq!(chain, ca.cert.pem().into_bytes());
        assert_eq!(read_key, ca.signing_key.serialize_pem().into_bytes());
        // A certificate where the key should be is named.
        let e = read_client_cert(&good, &good).unwrap_err().to_string();
        assert!(
            e.starts_with("--broker-client-key") && e.contains("ca.pem"),
            "{e}"
        );
        let e = read_client_cert(&empty, &key).unwrap_err().to_string();
        assert!(e.starts_with("--broker-client-cert"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
