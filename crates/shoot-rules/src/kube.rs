//! The few Kubernetes API calls the controller makes, over plain HTTPS with the pod's service
//! account (no client library: four requests do not justify one).
//!
//! - `GET /api/v1/namespaces?labelSelector=…`
//! - `GET /apis/monitoring.coreos.com/v1/prometheusrules?labelSelector=…` (all namespaces)
//! - `PATCH …/namespaces/{ns}/prometheusrules/{name}?fieldManager=…&force=true` with
//!   `Content-Type: application/apply-patch+yaml` (server-side apply creates or updates)
//! - `DELETE …/namespaces/{ns}/prometheusrules/{name}` (404 counts as done)

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::plan::{ManagedRule, Namespace, HASH_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL};

/// The service account files of an in-cluster pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Field manager of the server-side applies.
pub const FIELD_MANAGER: &str = "slo-gateway-shoot-rules";
const RULES_PATH: &str = "/apis/monitoring.coreos.com/v1";
/// Response bodies larger than this are refused (a list of every shoot namespace is far smaller).
const MAX_BODY_BYTES: usize = 64 << 20;

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No API server address (not in a pod, and none given).
    #[error("no API server: KUBERNETES_SERVICE_HOST is not set and --api-server not given")]
    NoApiServer,
    /// The address does not parse.
    #[error("API server URL {0:?}: {1}")]
    Url(String, String),
    /// The CA bundle could not be loaded.
    #[error("API server CA: {0}")]
    Tls(#[from] common::tls::TlsError),
    /// The bearer token file could not be read.
    #[error("reading token {path}: {source}")]
    Token {
        /// The token file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Connecting or reading failed.
    #[error("{method} {path}: {source}")]
    Http {
        /// Request method.
        method: Method,
        /// Request path.
        path: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The API server answered with an error status.
    #[error("{method} {path}: {status}: {body}")]
    Status {
        /// Request method.
        method: Method,
        /// Request path.
        path: String,
        /// The status.
        status: StatusCode,
        /// The start of the body (the API server's Status message).
        body: String,
    },
    /// The answer is not the JSON list it should be.
    #[error("{path}: unexpected answer: {reason}")]
    Decode {
        /// Request path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Where the API server is and how to authenticate.
#[derive(Debug, Clone)]
pub struct KubeTarget {
    /// `https://host:port` (or `http://` for tests on loopback).
    pub base_url: Url,
    /// CA bundle of the API server's certificate; none for plain http.
    pub ca_file: Option<PathBuf>,
    /// Bearer token file, re-read for every request (bound tokens are rotated by the kubelet).
    pub token_file: Option<PathBuf>,
}

impl KubeTarget {
    /// The in-cluster target: `KUBERNETES_SERVICE_HOST`/`_PORT` and the service account files,
    /// each overridable.
    pub fn in_cluster(
        api_server: Option<&str>,
        ca_file: Option<&Path>,
        token_file: Option<&Path>,
    ) -> Result<Self, KubeError> {
        let base = match api_server {
            Some(url) => url.to_string(),
            None => {
                let host =
                    std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| KubeError::NoApiServer)?;
                let port =
                    std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host
                };
                format!("https://{host}:{port}")
            }
        };
        let base_url =
            Url::parse(&base).map_err(|e| KubeError::Url(base.clone(), e.to_string()))?;
        let sa = Path::new(SERVICE_ACCOUNT_DIR);
        Ok(Self {
            ca_file: Some(ca_file.map_or_else(|| sa.join("ca.crt"), Path::to_path_buf)),
            token_file: Some(token_file.map_or_else(|| sa.join("token"), Path::to_path_buf)),
            base_url,
        }
        .without_tls_for_http())
    }

    /// Plain `http://` targets (tests) need no CA.
    fn without_tls_for_http(mut self) -> Self {
        if self.base_url.scheme() == "http" {
            self.ca_file = None;
        }
        self
    }
}

/// The API client.
#[derive(Debug, Clone)]
pub struct KubeClient {
    client: reqwest::Client,
    target: KubeTarget,
}

impl KubeClient {
    /// A client for `target`; `timeout` bounds each request.
    pub fn new(target: KubeTarget, timeout: Duration) -> Result<Self, KubeError> {
        let tls = common::tls::server_auth_client_config(target.ca_file.as_deref())?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!(
                "slo-gateway-shoot-rules/",
                env!("CARGO_PKG_VERSION")
            ))
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|source| KubeError::Http {
                method: Method::GET,
                path: String::new(),
                source,
            })?;
        Ok(Self { client, target })
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.target.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            for segment in segments {
                path.extend(segment.split('/').filter(|s| !s.is_empty()));
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<(StatusCode, Vec<u8>), KubeError> {
        let path = url.path().to_string();
        let mut request = self
            .client
            .request(method.clone(), url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(file) = &self.target.token_file {
            let token = std::fs::read_to_string(file).map_err(|source| KubeError::Token {
                path: file.clone(),
                source,
            })?;
            request = request.bearer_auth(token.trim());
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
        }
        let http = |source| KubeError::Http {
            method: method.clone(),
            path: path.clone(),
            source,
        };
        let mut response = request.send().await.map_err(http)?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http)? {
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(KubeError::Decode {
                    path,
                    reason: format!("response larger than {MAX_BODY_BYTES} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, bytes))
    }

    /// GETs a list, following `metadata.continue`, and returns every item.
    async fn list(&self, segments: &[&str], label_selector: &str) -> Result<Vec<Value>, KubeError> {
        let mut items = Vec::new();
        let mut continue_token = String::new();
        loop {
            let mut query = vec![("labelSelector", label_selector)];
            if !continue_token.is_empty() {
                query.push(("continue", continue_token.as_str()));
            }
            let url = self.url(segments, &query);
            let path = url.path().to_string();
            let (status, body) = self.call(Method::GET, url, None, "").await?;
            if !status.is_success() {
                return Err(status_error(Method::GET, path, status, &body));
            }
            let mut list: Value = serde_json::from_slice(&body).map_err(|e| KubeError::Decode {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            match list["items"].take() {
                Value::Array(page) => items.extend(page),
                Value::Null => {}
                _ => {
                    return Err(KubeError::Decode {
                        path,
                        reason: "items is not a list".into(),
                    })
                }
            }
            continue_token = list["metadata"]["continue"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if continue_token.is_empty() {
                return Ok(items);
            }
        }
    }

    /// Namespaces matching `label_selector` (e.g. `gardener.cloud/role=shoot`).
    pub async fn namespaces(&self, label_selector: &str) -> Result<Vec<Namespace>, KubeError> {
        let items = self.list(&["/api/v1/namespaces"], label_selector).await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let meta = &item["metadata"];
                Some(Namespace {
                    name: meta["name"].as_str()?.to_string(),
                    terminating: !meta["deletionTimestamp"].is_null()
                        || item["status"]["phase"] == "Terminating",
                })
            })
            .collect())
    }

    /// Every PrometheusRule this controller manages, in all namespaces.
    pub async fn managed_rules(&self) -> Result<Vec<ManagedRule>, KubeError> {
        let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY}");
        let items = self
            .list(&[RULES_PATH, "prometheusrules"], &selector)
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let meta = &item["metadata"];
                Some(ManagedRule {
                    namespace: meta["namespace"].as_str()?.to_string(),
                    name: meta["name"].as_str()?.to_string(),
                    hash: meta["annotations"][HASH_ANNOTATION]
                        .as_str()
                        .map(str::to_string),
                })
            })
            .collect())
    }

    /// Server-side applies `manifest` (a PrometheusRule with namespace and name).
    pub async fn apply_rule(
        &self,
        namespace: &str,
        name: &str,
        manifest: &Value,
    ) -> Result<(), KubeError> {
        let url = self.url(
            &[RULES_PATH, "namespaces", namespace, "prometheusrules", name],
            &[("fieldManager", FIELD_MANAGER), ("force", "true")],
        );
        let path = url.path().to_string();
        // JSON is YAML: the apply content type takes it as it is.
        let body = serde_json::to_vec(manifest).map_err(|e| KubeError::Decode {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let (status, answer) = self
            .call(
                Method::PATCH,
                url,
                Some(body),
                "application/apply-patch+yaml",
            )
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(status_error(Method::PATCH, path, status, &answer))
        }
    }

    /// Deletes a PrometheusRule; one that is already gone counts as deleted.
    pub async fn delete_rule(&self, namespace: &str, name: &str) -> Result<(), KubeError> {
        let url = self.url(
            &[RULES_PATH, "namespaces", namespace, "prometheusrules", name],
            &[],
        );
        let path = url.path().to_string();
        let (status, answer) = self.call(Method::DELETE, url, None, "").await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(status_error(Method::DELETE, path, status, &answer))
        }
    }
}

fn status_error(method: Method, path: String, status: StatusCode, body: &[u8]) -> KubeError {
    let text = String::from_utf8_lossy(body);
    // The API server's Status object says why; keep its message, not the whole JSON.
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.chars().take(300).collect());
    KubeError::Status {
        method,
        path,
        status,
        body: message,
    }
}
