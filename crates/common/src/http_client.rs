//! The HTTP side of Remote Write, shared by the agent's sender and the receiver's forwarder: one
//! POST with the protocol's request headers. Kept out of `remote_write` so the codec links no
//! HTTP client.

use remote_write::headers::{self, Protocol};

/// A POST of a snappy-compressed `protocol` body to `url` with the headers the Remote Write specs
/// require (`Content-Encoding`, `Content-Type`, `X-Prometheus-Remote-Write-Version`; the client
/// sets `User-Agent`).
pub fn post_remote_write(
    client: &reqwest::Client,
    url: &str,
    protocol: Protocol,
    body: impl Into<reqwest::Body>,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header(reqwest::header::CONTENT_ENCODING, headers::CONTENT_ENCODING)
        .header(reqwest::header::CONTENT_TYPE, protocol.content_type())
        .header(headers::VERSION_HEADER, protocol.version())
        .body(body)
}
