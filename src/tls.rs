//! TLS on the client listener (`[server] tls`): HTTPS on `listen`, HTTP/2 or HTTP/1.1 by
//! ALPN, and a certificate that SIGHUP re-reads without dropping a connection.
//!
//! Pingora builds its acceptor once, so the certificate is served through a resolver
//! ([`ServerCert`]) that every handshake asks: a reload swaps the certified key it holds, new
//! handshakes get the new one, and connections already open keep the session they made. A
//! certificate or key that does not load (a missing file, a key that does not match the
//! certificate) is refused at start as a config problem, and on reload leaves the running one
//! in place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::listeners::tls::TlsSettings;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};

/// Where the listener's certificate chain and private key are (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The listener's certificate, re-read on SIGHUP.
pub struct ServerCert {
    files: TlsFiles,
    current: ArcSwap<CertifiedKey>,
}

impl std::fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the key: only where it is
        f.debug_struct("ServerCert")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ServerCert {
    /// Loads the certificate chain and key; an error says which file and why (never the
    /// key's content).
    pub fn load(files: &TlsFiles) -> Result<Self, String> {
        Ok(Self {
            current: ArcSwap::from_pointee(certified_key(files)?),
            files: files.clone(),
        })
    }

    /// Re-reads the files: new handshakes get the new certificate; on error the running one
    /// stays.
    pub fn reload(&self) -> Result<(), String> {
        self.current.store(Arc::new(certified_key(&self.files)?));
        Ok(())
    }

    /// Where the certificate is read from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The listener's TLS settings: this certificate, HTTP/2 preferred over HTTP/1.1.
    pub fn settings(self: &Arc<Self>) -> Result<TlsSettings, String> {
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut settings =
            TlsSettings::intermediate(&path(&self.files.cert_file), &path(&self.files.key_file))
                .map_err(|e| format!("TLS settings: {e}"))?;
        settings.set_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        settings.enable_h2();
        Ok(settings)
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The chain and key in `files`, checked to belong together.
fn certified_key(files: &TlsFiles) -> Result<CertifiedKey, String> {
    let (cert, key) = (files.cert_file.display(), files.key_file.display());
    let (chain, private_key) = pingora::tls::load_certs_and_key_files(
        &files.cert_file.to_string_lossy(),
        &files.key_file.to_string_lossy(),
    )
    .map_err(|e| format!("cannot read {cert} or {key}: {e}"))?
    .ok_or_else(|| {
        format!(
            "{cert} holds no PEM certificate, or {key} no PEM private key (PKCS#8, PKCS#1 or SEC1)"
        )
    })?;
    pingora::tls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default()
        .ok_or_else(|| "no TLS crypto provider is installed".to_string())?;
    CertifiedKey::from_der(chain, private_key, provider)
        .map_err(|e| format!("{key} does not fit {cert}: {e}"))
}
