//! Reading PEM files of certificates, with errors that name the file.

use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::Error;

/// The certificates of the PEM file at `path`, which errors name as
/// `what`.
pub(crate) fn read_certificates(
    path: &Path,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let refuse =
        |e: &dyn std::fmt::Display| Error::Config(format!("{what} {}: {e}", path.display()));
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| refuse(&e))?
        .collect();
    let certs = certs.map_err(|e| refuse(&e))?;
    if certs.is_empty() {
        return Err(refuse(&"no certificate in it"));
    }
    Ok(certs)
}
