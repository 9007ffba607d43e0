//! The authorities a broker is verified against (`--broker-ca-file`), read
//! and checked at start so that an unusable file stops the node with its
//! name instead of failing every connection later.

use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::BrokerError;

/// The PEM text of `path`, once it is known to hold at least one
/// certificate.
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<u8>, BrokerError> {
    let refuse = |reason: String| BrokerError::CaFile {
        path: path.display().to_string(),
        reason,
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_refused_by_name() {
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
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
