//! The crate's errors, each mapping to exactly one spec [`ErrorCode`].

use std::net::IpAddr;

use steward_types::ErrorCode;

/// A failed resolution: `dns_resolution_failed` (timeout or resolver error) or `dns_resolution_empty`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("resolving {host} failed: {reason}")]
    Failed { host: String, reason: String },
    #[error("resolving {host} timed out")]
    TimedOut { host: String },
    #[error("resolving {host} returned no addresses")]
    Empty { host: String },
}

impl ResolveError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ResolveError::Failed { .. } | ResolveError::TimedOut { .. } => ErrorCode::DnsResolutionFailed,
            ResolveError::Empty { .. } => ErrorCode::DnsResolutionEmpty,
        }
    }
}

/// Everything that can stop a call on its way out or back. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// One address of the host is in a denied range; `code` is the `resolved_ip_denied_*` code.
    #[error("address {ip} of {host} is denied ({code})")]
    AddressDenied { host: String, ip: IpAddr, code: ErrorCode },
    #[error("connecting to {host} timed out")]
    ConnectTimeout { host: String },
    #[error("the upstream call to {host} exceeded the total timeout")]
    TotalTimeout { host: String },
    #[error("network error talking to {host}: {reason}")]
    Network { host: String, reason: String },
    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("upstream answered with redirect status {status}; redirects are never followed")]
    Redirect { status: u16 },
    /// A `content-encoding` other than identity or a `transfer-encoding` other than chunked. Names
    /// the header, never its value (upstream header values stay out of Steward's messages).
    #[error(
        "the upstream answered with a {header} other than {allowed}, which Steward does not accept (it must \
         scrub the answer as sent)"
    )]
    EncodingNotSupported { header: &'static str, allowed: &'static str },
    /// A streaming media type, one of Steward's own list (never the upstream's header value).
    #[error(
        "the upstream answered with a streaming content type ({media_type}), which Steward does not forward"
    )]
    StreamingNotSupported { media_type: &'static str },
    #[error("upstream response exceeds {limit} bytes")]
    ResponseTooLarge { limit: u64 },
    /// A request that canonicalization should have made impossible (a bug, not a client error).
    #[error("invalid outgoing request: {0}")]
    InvalidRequest(String),
    /// Invalid egress configuration (e.g. an unreadable extra CA).
    #[error("invalid egress configuration: {0}")]
    Config(String),
}

impl EgressError {
    /// The spec code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            EgressError::Resolve(e) => e.code(),
            EgressError::AddressDenied { code, .. } => *code,
            EgressError::ConnectTimeout { .. } | EgressError::TotalTimeout { .. } => {
                ErrorCode::UpstreamTimeout
            }
            EgressError::Network { .. } | EgressError::Tls { .. } => ErrorCode::UpstreamNetworkError,
            EgressError::Redirect { .. } => ErrorCode::RedirectDenied,
            EgressError::EncodingNotSupported { .. } => ErrorCode::UpstreamEncodingNotSupported,
            EgressError::StreamingNotSupported { .. } => ErrorCode::UpstreamStreamingNotSupported,
            EgressError::ResponseTooLarge { .. } => ErrorCode::UpstreamResponseTooLarge,
            EgressError::InvalidRequest(_) | EgressError::Config(_) => ErrorCode::InternalError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        let host = || "h".to_owned();
        let cases = [
            (EgressError::Resolve(ResolveError::TimedOut { host: host() }), "dns_resolution_failed", 502),
            (
                EgressError::Resolve(ResolveError::Failed { host: host(), reason: "x".into() }),
                "dns_resolution_failed",
                502,
            ),
            (EgressError::Resolve(ResolveError::Empty { host: host() }), "dns_resolution_empty", 502),
            (EgressError::ConnectTimeout { host: host() }, "upstream_timeout", 504),
            (EgressError::TotalTimeout { host: host() }, "upstream_timeout", 504),
            (EgressError::Network { host: host(), reason: "x".into() }, "upstream_network_error", 502),
            (EgressError::Tls { host: host(), reason: "x".into() }, "upstream_network_error", 502),
            (EgressError::Redirect { status: 302 }, "redirect_denied", 502),
            (
                EgressError::EncodingNotSupported { header: "content-encoding", allowed: "identity" },
                "upstream_encoding_not_supported",
                502,
            ),
            (
                EgressError::StreamingNotSupported { media_type: "text/event-stream" },
                "upstream_streaming_not_supported",
                502,
            ),
            (EgressError::ResponseTooLarge { limit: 1 }, "upstream_response_too_large", 502),
            (
                EgressError::AddressDenied {
                    host: host(),
                    ip: IpAddr::from([127, 0, 0, 1]),
                    code: ErrorCode::ResolvedIpDeniedLoopback,
                },
                "resolved_ip_denied_loopback",
                403,
            ),
        ];
        for (error, code, status) in cases {
            assert_eq!(error.code().as_str(), code, "{error}");
            assert_eq!(error.code().status(), status, "{error}");
        }
    }
}
