//! Logging setup, the admin HTTP server (`/metrics`, `/healthz`, `/readyz`) and shutdown signals.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;

/// Installs the tracing subscriber: `RUST_LOG` filter (default `default_level`), text or JSON.
pub fn init_logging(json: bool, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colour only on a terminal: in a pod or a log file escape codes are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A second init (tests, demo) is harmless: keep the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Readiness shared between a component and its admin server, with an optional detail line
/// that `/readyz` adds to its answer (a degraded but ready state, e.g. the agent's queue in
/// memory mode).
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    detail: Arc<std::sync::Mutex<String>>,
}

impl Readiness {
    /// Marks the component ready or not.
    pub fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
    /// Whether the component is ready.
    pub fn get(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
    /// Replaces the detail line (empty for none).
    pub fn set_detail(&self, detail: &str) {
        let mut current = self
            .detail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *current != detail {
            detail.clone_into(&mut current);
        }
    }
    fn detail(&self) -> String {
        self.detail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[derive(Debug, Clone)]
struct AdminState {
    registry: Arc<Registry>,
    readiness: Readiness,
}

/// Router of the admin endpoints.
pub fn admin_app(registry: Arc<Registry>, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(AdminState {
            registry,
            readiness,
        })
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

async fn ready(State(state): State<AdminState>) -> impl IntoResponse {
    let (status, word) = if state.readiness.get() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    };
    let detail = state.readiness.detail();
    if detail.is_empty() {
        (status, format!("{word}\n"))
    } else {
        (status, format!("{word}\n{detail}\n"))
    }
}

/// Serves the admin endpoints on `listener` until `shutdown` completes.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_admin_with_routes(listener, registry, readiness, Router::new(), shutdown).await
}

/// [`serve_admin`] plus a component's own admin `routes` (such as `/status`).
pub async fn serve_admin_with_routes(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    readiness: Readiness,
    routes: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, admin_app(registry, readiness).merge(routes))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Text made safe for HTML element content and attribute values (the status pages).
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn readyz_follows_readiness_and_metrics_encode() {
        let mut registry = Registry::default();
        let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
        registry.register("things", "Things", counter.clone());
        counter.inc();
        let readiness = Readiness::default();
        let app = admin_app(Arc::new(registry), readiness.clone());
        let get = |path: &str| axum::http::Request::get(path).body(Body::empty()).unwrap();
        let resp = app.clone().oneshot(get("/readyz")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        readiness.set(true);
        let resp = app.clone().oneshot(get("/readyz")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        readiness.set_detail("queue: memory mode");
        let resp = app.clone().oneshot(get("/readyz")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ready\nqueue: memory mode\n");
        let resp = app.oneshot(get("/metrics")).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("things_total 1"));
    }
}

/// Declares the values of one metric label as an enum: typed at every call site, iterable
/// (`ALL`, for status pages) and encoded as the text given per variant.
///
/// ```
/// slo_gateway_common::label_values! {
///     /// `result` of a reload.
///     pub enum Outcome { Success => "success", Failure => "failure" }
/// }
/// assert_eq!(Outcome::ALL.len(), 2);
/// assert_eq!(Outcome::Failure.as_str(), "failure");
/// ```
#[macro_export]
macro_rules! label_values {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The label value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::telemetry::EncodeLabelValue for $name {
            fn encode(
                &self,
                encoder: &mut $crate::telemetry::LabelValueEncoder<'_>,
            ) -> ::std::fmt::Result {
                ::std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
    };
}

pub use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

crate::label_values! {
    /// `result` of a certificate reload, the same in every component.
    pub enum ReloadResult {
        /// The new files were loaded.
        Success => "success",
        /// They were unusable; the previous configuration stays.
        Failure => "failure",
    }
}

impl ReloadResult {
    /// The result of a reload that did (`true`) or did not succeed.
    pub fn of(ok: bool) -> Self {
        if ok {
            Self::Success
        } else {
            Self::Failure
        }
    }
}
