//! The mTLS listener: accepts TCP, does the TLS handshake inside the per-connection task (a stalled
//! client never blocks accepts), reads the seed identity from the verified client certificate,
//! resolves that seed's metric series once ([`Connection`]) and serves HTTP/1.1 with both
//! attached to every request of the connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use super::identity::{certificate_not_after, identity_from_cert, IdentityError, SeedIdentity};
use super::metrics::{ReceiverMetrics, SeedHandles};
use crate::config::IdentityConfig;
use crate::metrics::ConnectionFailure;

/// The identity of a connection: a seed, or why its certificate names none, and when the
/// certificate expires. Attached to every request so the handler answers 403 with the precise
/// reason.
#[derive(Debug, Clone)]
pub struct ConnectionIdentity {
    /// The seed, or why there is none.
    pub seed: Result<SeedIdentity, IdentityError>,
    /// Expiry of the client certificate, Unix seconds.
    pub cert_not_after_unix_s: Option<i64>,
}

impl ConnectionIdentity {
    /// A connection of `seed` (tests insert this directly).
    pub fn for_seed(seed: &str) -> Self {
        Self {
            seed: Ok(SeedIdentity(seed.to_string())),
            cert_not_after_unix_s: None,
        }
    }

    /// A connection whose certificate names no seed.
    pub fn refused(error: IdentityError) -> Self {
        Self {
            seed: Err(error),
            cert_not_after_unix_s: None,
        }
    }
}

/// What every request of one connection shares, attached to each as an `Arc<Connection>`: the
/// identity, and its seed's metric series resolved once.
#[derive(Debug)]
pub struct Connection {
    /// The identity of the client certificate.
    pub identity: ConnectionIdentity,
    /// The seed's metric series ("" when the certificate names none).
    pub handles: SeedHandles,
}

impl Connection {
    /// The connection of `identity`, with its seed's handles in `metrics`.
    pub fn new(identity: ConnectionIdentity, metrics: &ReceiverMetrics) -> Self {
        let seed = identity.seed.as_ref().map_or("", |s| s.0.as_str());
        Self {
            handles: SeedHandles::new(seed, metrics),
            identity,
        }
    }
}

/// Connection-level settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Most time for the TLS handshake.
    pub handshake_timeout: Duration,
    /// How identity is read from the certificate.
    pub identity: Arc<IdentityConfig>,
    /// How long open connections get to finish after shutdown starts.
    pub shutdown_grace: Duration,
}

/// Serves `app` over mTLS on `listener` until `shutdown` completes, then lets open connections
/// finish their current request (up to `shutdown_grace`).
pub async fn run(
    listener: TcpListener,
    tls: watch::Receiver<Arc<ServerConfig>>,
    app: Router,
    settings: ServerSettings,
    metrics: ReceiverMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Each connection takes the newest config: certificate rotation needs no restart.
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.borrow().clone());
        let app = app.clone();
        let settings = settings.clone();
        let metrics = metrics.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let stream = match tokio::time::timeout(
                settings.handshake_timeout,
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    metrics.connection_failure(ConnectionFailure::Handshake, peer, Some(&error));
                    return;
                }
                Err(_) => {
                    metrics.connection_failure(ConnectionFailure::HandshakeTimeout, peer, None);
                    return;
                }
            };
            let leaf = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first());
            let identity = ConnectionIdentity {
                seed: leaf.map_or(Err(IdentityError::NoCertificate), |leaf| {
                    identity_from_cert(leaf, &settings.identity)
                }),
                cert_not_after_unix_s: leaf.and_then(|leaf| certificate_not_after(leaf)),
            };
            if let Err(error) = &identity.seed {
                metrics.connection_failure(ConnectionFailure::Identity, peer, Some(error));
            }
            let connection = Arc::new(Connection::new(identity, &metrics));
            let service = app.map_request(
                move |mut request: axum::http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(connection.clone());
                    request
                },
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(
                    TokioIo::new(stream),
                    hyper_util::service::TowerToHyperService::new(service),
                );
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(settings.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
}
