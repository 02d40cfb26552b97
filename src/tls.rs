//! TLS on the listener (rustls), for re-encrypt routes and direct exposure. The certificate is
//! re-read when its files change — OpenShift's service-serving certificates and cert-manager
//! rotate them in place — and a pair that does not load is reported while the old one stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

/// The ALPN name of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";

/// The certificate and key files, and what was last loaded from them.
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    last: Mutex<(Vec<u8>, Zeroizing<Vec<u8>>)>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("cert", &self.cert_path)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse(
    provider: &CryptoProvider,
    cert: &[u8],
    key: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "{}: no certificate in the file",
            cert_path.display()
        ));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("{}: {e}", key_path.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| {
        format!(
            "{} does not belong to {}: {e}",
            key_path.display(),
            cert_path.display()
        )
    })?;
    Ok(ck)
}

impl CertStore {
    /// Load the pair; errors name the file.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<CertStore, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cert = read(cert_path)?;
        let key = Zeroizing::new(read(key_path)?);
        let ck = parse(&provider, &cert, &key, cert_path, key_path)?;
        Ok(CertStore {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(ck)),
            last: Mutex::new((cert, key)),
        })
    }

    /// Re-read the files; `Ok(true)` when a new pair is in use.
    pub fn reload(&self) -> Result<bool, String> {
        let cert = read(&self.cert_path)?;
        let key = Zeroizing::new(read(&self.key_path)?);
        let unchanged = self.last.lock().is_ok_and(|l| l.0 == cert && *l.1 == *key);
        if unchanged {
            return Ok(false);
        }
        // Remember what was tried, so a broken pair is reported once, not every poll.
        if let Ok(mut l) = self.last.lock() {
            *l = (cert.clone(), key.clone());
        }
        let ck = parse(&self.provider, &cert, &key, &self.cert_path, &self.key_path)?;
        if let Ok(mut cur) = self.current.write() {
            *cur = Arc::new(ck);
        }
        Ok(true)
    }

    /// A TLS acceptor that always serves the current pair (TLS 1.2 and 1.3), offering HTTP/2
    /// before HTTP/1.1 when `http2`.
    pub fn acceptor(self: &Arc<Self>, http2: bool) -> Result<TlsAcceptor, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = if http2 {
            vec![ALPN_H2.to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match self.current.read() {
            Ok(c) => Some(Arc::clone(&c)),
            Err(poisoned) => Some(Arc::clone(&poisoned.into_inner())),
        }
    }
}

/// TLS settings for connections dashgate makes to a directory or an identity provider: the
/// certificates in `ca_file` (PEM) when given (a company CA), else the system's trust store and
/// the Mozilla roots.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = read(path)?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no certificate in the file", path.display()));
            }
        }
        None => {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
