//! TLS material: PEM loading, rustls configs for both ends of the mTLS link, and hot reload.
//!
//! Configs are rebuilt from the files whenever they change and published through a
//! `watch::Receiver<Arc<_>>`: new connections use the new config, live ones keep theirs, and a
//! broken replacement (half-written by cert-manager, say) keeps the last good config.
//! TLS session resumption is disabled on the server so that every connection is verified against
//! the current CA bundle.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

/// Subject organisation of Gardener seed client certificates.
pub const GARDENER_SEEDS_ORG: &str = "gardener.cloud:system:seeds";
/// Subject common-name prefix of Gardener seed client certificates (`…:seed:<seed-name>`).
pub const GARDENER_SEED_CN_PREFIX: &str = "gardener.cloud:system:seed:";

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the material.
    #[error("{context}: {source}")]
    Rustls {
        /// Which config was being built.
        context: &'static str,
        /// rustls' error.
        source: rustls::Error,
    },
    /// The client verifier could not be built (e.g. empty CA bundle).
    #[error("client CA bundle {path}: {message}")]
    Verifier {
        /// The CA file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process-wide rustls provider, for clients built without an explicit
/// config (reqwest is built without a provider of its own). Idempotent.
pub fn install_default_crypto_provider() {
    // Err means one is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// All certificates in a PEM file (a chain, leaf first, or a CA bundle).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |message: String| TlsError::Pem {
        path: path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// A root store of every certificate in a PEM bundle.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            message: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// Files of a server that requires client certificates.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
    /// CA bundle for client certificates.
    pub client_ca: PathBuf,
}

/// A TLS 1.2/1.3 server config that **requires** a client certificate chained to `client_ca`.
pub fn server_config(files: &ServerFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let roots = Arc::new(load_roots(&files.client_ca)?);
    // No allow_unauthenticated(): a connection without a client certificate fails the handshake.
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| TlsError::Verifier {
            path: files.client_ca.clone(),
            message: e.to_string(),
        })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|source| TlsError::Rustls {
            context: "server protocol versions",
            source,
        })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .map_err(|source| TlsError::Rustls {
            context: "server certificate and key",
            source,
        })?;
    // Resumed sessions skip client verification: without them a rotated CA or revoked seed
    // takes effect on the next connection.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Files of a client that authenticates with a certificate.
#[derive(Debug, Clone)]
pub struct ClientFiles {
    /// CA bundle for the server's certificate.
    pub ca: PathBuf,
    /// Client certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// A TLS 1.2/1.3 client config builder on the ring provider.
fn client_builder(
    context: &'static str,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, TlsError> {
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|source| TlsError::Rustls { context, source })
}

/// A TLS 1.2/1.3 client config presenting `cert` and trusting only `ca`.
pub fn client_config(files: &ClientFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let config = client_builder("client protocol versions")?
        .with_root_certificates(load_roots(&files.ca)?)
        .with_client_auth_cert(load_certs(&files.cert)?, load_key(&files.key)?)
        .map_err(|source| TlsError::Rustls {
            context: "client certificate and key",
            source,
        })?;
    Ok(Arc::new(config))
}

/// A client config that authenticates the server against `ca_file` and presents no
/// certificate (scraping https targets, an https upstream). Without a CA file the trust store
/// is empty, so only plain HTTP works: the system's roots are never used.
///
/// reqwest is built without a crypto provider of its own and must always be handed a config.
pub fn server_auth_client_config(ca_file: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let roots = match ca_file {
        Some(path) => load_roots(path)?,
        None => RootCertStore::empty(),
    };
    Ok(client_builder("client protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Change stamp of a set of files: the contents of each (following symlinks, so a Kubernetes
/// secret volume's `..data` swap counts as a change). Not modification time and length: a
/// rotated certificate usually has the same length, and file systems with coarse timestamps give
/// a replacement written within the same tick the same mtime, so the change would go unnoticed
/// until the next one. The files are a few KiB; reading them every interval is cheap.
fn stamp(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files.iter().map(|f| std::fs::read(f).ok()).collect()
}

/// Builds a value from `files` now, then rebuilds it every `interval` in which the files changed.
///
/// The first build must succeed. A failed rebuild is logged and the last good value stays.
/// `on_reload(ok)` is called after each rebuild attempt (for metrics).
pub fn watch_files<T, B, R>(
    files: Vec<PathBuf>,
    interval: Duration,
    build: B,
    on_reload: R,
) -> Result<watch::Receiver<Arc<T>>, TlsError>
where
    T: Send + Sync + 'static,
    B: Fn() -> Result<Arc<T>, TlsError> + Send + 'static,
    R: Fn(bool) + Send + 'static,
{
    let initial = build()?;
    let (tx, rx) = watch::channel(initial);
    let mut last = stamp(&files);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if tx.is_closed() {
                return;
            }
            let now = stamp(&files);
            if now == last {
                continue;
            }
            match build() {
                Ok(value) => {
                    last = now;
                    tracing::info!(files = ?files, "TLS material reloaded");
                    tx.send_replace(value);
                    on_reload(true);
                }
                Err(error) => {
                    // Retried at the next tick; cert-manager may still be writing.
                    tracing::warn!(%error, "TLS reload failed; keeping the previous certificates");
                    on_reload(false);
                }
            }
        }
    });
    Ok(rx)
}
