//! A provider's trusted roots when its config names a `ca_file`: the system's roots plus the
//! file's certificates (a private provider behind a corporate CA), checked when the config
//! is read so a bad file is a config error with its line, not a failed handshake later.
//! Without `ca_file` the connector uses the system's roots (and `SSL_CERT_FILE`) as before.

use std::path::Path;
use std::sync::Arc;

use pingora::protocols::tls::CaType;
use pingora::tls::{load_native_certs, CertificateDer, RootCertStore};
use pingora::utils::tls::{parse_x509, WrappedX509};
use rustls_pki_types::pem::PemObject;

/// The system's roots and every certificate in `ca_file` (PEM), for one provider's peers.
pub fn with_ca_file(ca_file: &Path) -> Result<Arc<CaType>, String> {
    let shown = ca_file.display();
    let mut check = RootCertStore::empty();
    let mut extra = Vec::new();
    for cert in
        CertificateDer::pem_file_iter(ca_file).map_err(|e| format!("cannot read {shown}: {e}"))?
    {
        let cert = cert.map_err(|e| format!("{shown} is not PEM certificates: {e}"))?;
        check
            .add(cert.clone())
            .map_err(|e| format!("{shown} holds a certificate that is not a usable root: {e}"))?;
        extra.push(cert);
    }
    if extra.is_empty() {
        return Err(format!("{shown} holds no PEM certificate"));
    }
    // the system's roots, those that parse as roots (a store may hold odd ones)
    let system = load_native_certs()
        .unwrap_or_default()
        .into_iter()
        .filter(|cert| RootCertStore::empty().add(cert.clone()).is_ok());
    let roots: Vec<WrappedX509> = system
        .chain(extra)
        .map(|cert| WrappedX509::new(cert.as_ref().to_vec(), parse_x509))
        .collect();
    Ok(roots.into())
}
