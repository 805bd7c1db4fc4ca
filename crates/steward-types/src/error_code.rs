//! The stable error codes of `spec/errors.md`, one enum with its HTTP status.
//!
//! Written once, as one table in the order of the spec's (status, then code), by [`error_codes!`]: the
//! enum, [`ErrorCode::ALL`], the wire form and the status all come from it, so they cannot disagree. A
//! test in `steward-server` checks the table against the spec and generates `docs/errors.md` from it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares [`ErrorCode`] from `status => { Variant = "wire_code", … }` rows.
macro_rules! error_codes {
    ($($status:literal => { $($variant:ident = $code:literal,)+ },)+) => {
        /// One error code. `as_str` is the wire form; `status` the HTTP status the spec gives it.
        ///
        /// `template_not_found` is 400 when an integration is written and 404 at execute: the enum
        /// carries both, [`ErrorCode::TemplateNotFoundOnWrite`] for the 400 one; both serialize the same,
        /// and [`ErrorCode::from_code`] parses the 404 form.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($($variant,)+)+
        }

        impl ErrorCode {
            /// Every code, in the order of `spec/errors.md`.
            pub const ALL: &[ErrorCode] = &[$($(ErrorCode::$variant,)+)+];

            /// The wire form of this code.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($(ErrorCode::$variant => $code,)+)+
                }
            }

            /// The HTTP status code of this error.
            pub const fn status(self) -> u16 {
                match self {
                    $($(ErrorCode::$variant => $status,)+)+
                }
            }
        }
    };
}

error_codes! {
    400 => {
        RequestBodyMissing = "request_body_missing",
        RequestBodyInvalidJson = "request_body_invalid_json",
        RequestBodySchemaInvalid = "request_body_schema_invalid",
        PathParamInvalid = "path_param_invalid",
        QueryInvalid = "query_invalid",
        IdempotencyKeyInvalid = "idempotency_key_invalid",
        SessionScopeInvalid = "session_scope_invalid",
        RequestedTtlExceedsMax = "requested_ttl_exceeds_max",
        CsrInvalid = "csr_invalid",
        CsrKeyUnsupported = "csr_key_unsupported",
        RequestUrlInvalid = "request_url_invalid",
        RequestUrlUserinfoForbidden = "request_url_userinfo_forbidden",
        RequestUrlFragmentForbidden = "request_url_fragment_forbidden",
        RequestPercentEncodingInvalid = "request_percent_encoding_invalid",
        RequestHeaderNameInvalid = "request_header_name_invalid",
        RequestHeaderValueInvalid = "request_header_value_invalid",
        RequestBodyBase64Invalid = "request_body_base64_invalid",
        RequestContentTypeMissing = "request_content_type_missing",
        AmbiguousFraming = "ambiguous_framing",
        TemplateInvalid = "template_invalid",
        TemplateHostInvalid = "template_host_invalid",
        TemplateHostWildcardForbidden = "template_host_wildcard_forbidden",
        TemplateAllowlistDuplicate = "template_allowlist_duplicate",
        TemplateGroupDuplicate = "template_group_duplicate",
        TemplatePathPatternUnanchored = "template_path_pattern_unanchored",
        TemplatePathPatternOverbroad = "template_path_pattern_overbroad",
        TemplatePathPatternInvalid = "template_path_pattern_invalid",
        TemplateHeaderAllowlistInvalid = "template_header_allowlist_invalid",
        TemplateVersionNotIncremented = "template_version_not_incremented",
        TemplateProviderMismatch = "template_provider_mismatch",
        TemplateNotFoundOnWrite = "template_not_found",
        PolicyInvalid = "policy_invalid",
        IpAllowlistInvalid = "ip_allowlist_invalid",
        SecretInvalid = "secret_invalid",
        ValidationFailed = "validation_failed",
    },
    401 => {
        MtlsRequired = "mtls_required",
        WorkloadDisabled = "workload_disabled",
        CertificateRevoked = "certificate_revoked",
        CertificateExpired = "certificate_expired",
        EnrollmentTokenInvalid = "enrollment_token_invalid",
        EnrollmentTokenExpired = "enrollment_token_expired",
        SessionMissing = "session_missing",
        SessionInvalid = "session_invalid",
        SessionWorkloadMismatch = "session_workload_mismatch",
        SessionCertMismatch = "session_cert_mismatch",
        SessionDpopRequired = "session_dpop_required",
        DpopMissing = "dpop_missing",
        DpopMalformed = "dpop_malformed",
        DpopBadTyp = "dpop_bad_typ",
        DpopAlgForbidden = "dpop_alg_forbidden",
        DpopJwkInvalid = "dpop_jwk_invalid",
        DpopSignatureInvalid = "dpop_signature_invalid",
        DpopMissingClaims = "dpop_missing_claims",
        DpopMethodMismatch = "dpop_method_mismatch",
        DpopHtuMismatch = "dpop_htu_mismatch",
        DpopIatSkew = "dpop_iat_skew",
        DpopAthMissing = "dpop_ath_missing",
        DpopAthMismatch = "dpop_ath_mismatch",
        DpopJktMismatch = "dpop_jkt_mismatch",
        DpopReplay = "dpop_replay",
        AdminAuthMissing = "admin_auth_missing",
        AdminAuthInvalid = "admin_auth_invalid",
        GatewayTokenInvalid = "gateway_token_invalid",
    },
    403 => {
        ApprovalRequired = "approval_required",
        WorkloadIpDenied = "workload_ip_denied",
        IdentityLifetimeExceeded = "identity_lifetime_exceeded",
        SessionScopeMissing = "session_scope_missing",
        ManifestWorkloadMismatch = "manifest_workload_mismatch",
        IntegrationDisabled = "integration_disabled",
        IntegrationHostsChanged = "integration_hosts_changed",
        RequestSchemeNotAllowed = "request_scheme_not_allowed",
        RequestHostNotAllowed = "request_host_not_allowed",
        RequestPortNotAllowed = "request_port_not_allowed",
        RequestQueryKeyNotAllowlisted = "request_query_key_not_allowlisted",
        RequestQueryDuplicateKeyForbidden = "request_query_duplicate_key_forbidden",
        RequestQueryKeyReserved = "request_query_key_reserved",
        RequestContentTypeNotAllowed = "request_content_type_not_allowed",
        RequestStreamingNotSupported = "request_streaming_not_supported",
        NoMatchingGroup = "no_matching_group",
        PolicyDeny = "policy_deny",
        PolicyDefaultDeny = "policy_default_deny",
        PolicyConstraintFailed = "policy_constraint_failed",
        ResolvedIpDeniedMetadataRange = "resolved_ip_denied_metadata_range",
        ResolvedIpDeniedLoopback = "resolved_ip_denied_loopback",
        ResolvedIpDeniedPrivateRange = "resolved_ip_denied_private_range",
        ResolvedIpDeniedLinkLocal = "resolved_ip_denied_link_local",
        ResolvedIpDeniedReserved = "resolved_ip_denied_reserved",
        AdminForbidden = "admin_forbidden",
        AdminTenantForbidden = "admin_tenant_forbidden",
    },
    404 => {
        RouteNotFound = "route_not_found",
        GatewayRouteNotFound = "gateway_route_not_found",
        IntegrationNotFound = "integration_not_found",
        TemplateNotFound = "template_not_found",
        TemplateVersionNotFound = "template_version_not_found",
        ApprovalNotFound = "approval_not_found",
        ManifestNoRules = "manifest_no_rules",
        TenantNotFound = "tenant_not_found",
        WorkloadNotFound = "workload_not_found",
        PolicyNotFound = "policy_not_found",
        TokenNotFound = "token_not_found",
        CertificateNotFound = "certificate_not_found",
    },
    405 => {
        MethodNotAllowed = "method_not_allowed",
    },
    409 => {
        EnrollmentTokenUsed = "enrollment_token_used",
        IdempotencyKeyConflict = "idempotency_key_conflict",
        IdempotencyRequestInProgress = "idempotency_request_in_progress",
        ApprovalNotPending = "approval_not_pending",
        TemplateVersionImmutable = "template_version_immutable",
        TemplateVersionExists = "template_version_exists",
        TenantNameConflict = "tenant_name_conflict",
        WorkloadNameConflict = "workload_name_conflict",
        IntegrationNameConflict = "integration_name_conflict",
        LastOwnerToken = "last_owner_token",
        GatewayHostAmbiguous = "gateway_host_ambiguous",
    },
    413 => {
        RequestBodyTooLarge = "request_body_too_large",
    },
    415 => {
        ContentTypeInvalid = "content_type_invalid",
    },
    429 => {
        PolicyRateLimited = "policy_rate_limited",
        SessionRateLimited = "session_rate_limited",
    },
    500 => {
        InternalError = "internal_error",
    },
    502 => {
        GatewayBrokerUnreachable = "gateway_broker_unreachable",
        DnsResolutionFailed = "dns_resolution_failed",
        DnsResolutionEmpty = "dns_resolution_empty",
        UpstreamNetworkError = "upstream_network_error",
        RedirectDenied = "redirect_denied",
        UpstreamResponseTooLarge = "upstream_response_too_large",
        UpstreamStreamingNotSupported = "upstream_streaming_not_supported",
        UpstreamEncodingNotSupported = "upstream_encoding_not_supported",
    },
    503 => {
        IntegrationSecretUnavailable = "integration_secret_unavailable",
        AuditWriteFailed = "audit_write_failed",
        StorageUnavailable = "storage_unavailable",
        CoordinationUnavailable = "coordination_unavailable",
    },
    504 => {
        UpstreamTimeout = "upstream_timeout",
    },
}

impl ErrorCode {
    /// Parses a wire code (the 404 form for `template_not_found`).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .filter(|c| *c != ErrorCode::TemplateNotFoundOnWrite)
            .find(|c| c.as_str() == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Self::from_code(&code).ok_or_else(|| serde::de::Error::custom(format!("unknown error code {code:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_except_the_documented_twin() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            if *code == ErrorCode::TemplateNotFoundOnWrite {
                continue;
            }
            assert!(seen.insert(code.as_str()), "duplicate code {code}");
        }
    }

    #[test]
    fn spec_statuses() {
        assert_eq!(ErrorCode::RouteNotFound.status(), 404);
        assert_eq!(ErrorCode::TemplateNotFound.status(), 404);
        assert_eq!(ErrorCode::TemplateNotFoundOnWrite.status(), 400);
        assert_eq!(ErrorCode::AuditWriteFailed.status(), 503);
        assert_eq!(ErrorCode::UpstreamTimeout.status(), 504);
        assert_eq!(ErrorCode::from_code("dpop_replay"), Some(ErrorCode::DpopReplay));
        assert_eq!(ErrorCode::from_code("template_not_found"), Some(ErrorCode::TemplateNotFound));
        assert_eq!(ErrorCode::CertificateExpired.status(), 401);
        assert_eq!(ErrorCode::ApprovalRequired.status(), 403);
    }
}
