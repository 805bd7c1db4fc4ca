//! The stable error codes of `spec/errors.md`, one enum with its HTTP status.
//!
//! Generated once from the spec's table and checked against it by a test in `steward-server`
//! (`docs/errors.md` is generated from [`ErrorCode::ALL`]), so the contract cannot drift silently.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One error code. `as_str` is the wire form; `status` the HTTP status the spec gives it.
///
/// `template_not_found` is 400 when an integration is written and 404 at execute: the enum carries
/// the 404 form, and [`ErrorCode::TemplateNotFoundOnWrite`] the 400 one; both serialize the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    RequestBodyMissing,
    RequestBodyInvalidJson,
    RequestBodySchemaInvalid,
    PathParamInvalid,
    QueryInvalid,
    IdempotencyKeyInvalid,
    SessionScopeInvalid,
    RequestedTtlExceedsMax,
    CsrInvalid,
    CsrKeyUnsupported,
    RequestUrlInvalid,
    RequestUrlUserinfoForbidden,
    RequestUrlFragmentForbidden,
    RequestPercentEncodingInvalid,
    RequestHeaderNameInvalid,
    RequestHeaderValueInvalid,
    RequestBodyBase64Invalid,
    RequestContentTypeMissing,
    AmbiguousFraming,
    TemplateInvalid,
    TemplateHostInvalid,
    TemplateHostWildcardForbidden,
    TemplateAllowlistDuplicate,
    TemplateGroupDuplicate,
    TemplatePathPatternUnanchored,
    TemplatePathPatternOverbroad,
    TemplatePathPatternInvalid,
    TemplateHeaderAllowlistInvalid,
    TemplateVersionNotIncremented,
    TemplateProviderMismatch,
    TemplateNotFound,
    PolicyInvalid,
    IpAllowlistInvalid,
    SecretInvalid,
    ValidationFailed,
    MtlsRequired,
    WorkloadDisabled,
    CertificateRevoked,
    CertificateExpired,
    EnrollmentTokenInvalid,
    EnrollmentTokenExpired,
    SessionMissing,
    SessionInvalid,
    SessionWorkloadMismatch,
    SessionCertMismatch,
    SessionDpopRequired,
    DpopMissing,
    DpopMalformed,
    DpopBadTyp,
    DpopAlgForbidden,
    DpopJwkInvalid,
    DpopSignatureInvalid,
    DpopMissingClaims,
    DpopMethodMismatch,
    DpopHtuMismatch,
    DpopIatSkew,
    DpopAthMissing,
    DpopAthMismatch,
    DpopJktMismatch,
    DpopReplay,
    AdminAuthMissing,
    AdminAuthInvalid,
    WorkloadIpDenied,
    IdentityLifetimeExceeded,
    SessionScopeMissing,
    ManifestWorkloadMismatch,
    IntegrationDisabled,
    IntegrationHostsChanged,
    RequestSchemeNotAllowed,
    RequestHostNotAllowed,
    RequestPortNotAllowed,
    RequestQueryKeyNotAllowlisted,
    RequestQueryDuplicateKeyForbidden,
    RequestQueryKeyReserved,
    RequestContentTypeNotAllowed,
    RequestStreamingNotSupported,
    NoMatchingGroup,
    PolicyDeny,
    PolicyDefaultDeny,
    PolicyConstraintFailed,
    ResolvedIpDeniedMetadataRange,
    ResolvedIpDeniedLoopback,
    ResolvedIpDeniedPrivateRange,
    ResolvedIpDeniedLinkLocal,
    ResolvedIpDeniedReserved,
    AdminForbidden,
    AdminTenantForbidden,
    RouteNotFound,
    IntegrationNotFound,
    TemplateVersionNotFound,
    ApprovalNotFound,
    ManifestNoRules,
    TenantNotFound,
    WorkloadNotFound,
    PolicyNotFound,
    TokenNotFound,
    CertificateNotFound,
    MethodNotAllowed,
    EnrollmentTokenUsed,
    IdempotencyKeyConflict,
    IdempotencyRequestInProgress,
    ApprovalNotPending,
    TemplateVersionImmutable,
    TemplateVersionExists,
    TenantNameConflict,
    WorkloadNameConflict,
    IntegrationNameConflict,
    LastOwnerToken,
    RequestBodyTooLarge,
    ContentTypeInvalid,
    PolicyRateLimited,
    SessionRateLimited,
    InternalError,
    DnsResolutionFailed,
    DnsResolutionEmpty,
    UpstreamNetworkError,
    RedirectDenied,
    UpstreamResponseTooLarge,
    UpstreamStreamingNotSupported,
    UpstreamEncodingNotSupported,
    IntegrationSecretUnavailable,
    AuditWriteFailed,
    StorageUnavailable,
    CoordinationUnavailable,
    UpstreamTimeout,
    TemplateNotFoundOnWrite,
}

impl ErrorCode {
    /// Every code, in the order of `spec/errors.md`.
    pub const ALL: &[ErrorCode] = &[
        ErrorCode::RequestBodyMissing,
        ErrorCode::RequestBodyInvalidJson,
        ErrorCode::RequestBodySchemaInvalid,
        ErrorCode::PathParamInvalid,
        ErrorCode::QueryInvalid,
        ErrorCode::IdempotencyKeyInvalid,
        ErrorCode::SessionScopeInvalid,
        ErrorCode::RequestedTtlExceedsMax,
        ErrorCode::CsrInvalid,
        ErrorCode::CsrKeyUnsupported,
        ErrorCode::RequestUrlInvalid,
        ErrorCode::RequestUrlUserinfoForbidden,
        ErrorCode::RequestUrlFragmentForbidden,
        ErrorCode::RequestPercentEncodingInvalid,
        ErrorCode::RequestHeaderNameInvalid,
        ErrorCode::RequestHeaderValueInvalid,
        ErrorCode::RequestBodyBase64Invalid,
        ErrorCode::RequestContentTypeMissing,
        ErrorCode::AmbiguousFraming,
        ErrorCode::TemplateInvalid,
        ErrorCode::TemplateHostInvalid,
        ErrorCode::TemplateHostWildcardForbidden,
        ErrorCode::TemplateAllowlistDuplicate,
        ErrorCode::TemplateGroupDuplicate,
        ErrorCode::TemplatePathPatternUnanchored,
        ErrorCode::TemplatePathPatternOverbroad,
        ErrorCode::TemplatePathPatternInvalid,
        ErrorCode::TemplateHeaderAllowlistInvalid,
        ErrorCode::TemplateVersionNotIncremented,
        ErrorCode::TemplateProviderMismatch,
        ErrorCode::TemplateNotFound,
        ErrorCode::PolicyInvalid,
        ErrorCode::IpAllowlistInvalid,
        ErrorCode::SecretInvalid,
        ErrorCode::ValidationFailed,
        ErrorCode::MtlsRequired,
        ErrorCode::WorkloadDisabled,
        ErrorCode::CertificateRevoked,
        ErrorCode::CertificateExpired,
        ErrorCode::EnrollmentTokenInvalid,
        ErrorCode::EnrollmentTokenExpired,
        ErrorCode::SessionMissing,
        ErrorCode::SessionInvalid,
        ErrorCode::SessionWorkloadMismatch,
        ErrorCode::SessionCertMismatch,
        ErrorCode::SessionDpopRequired,
        ErrorCode::DpopMissing,
        ErrorCode::DpopMalformed,
        ErrorCode::DpopBadTyp,
        ErrorCode::DpopAlgForbidden,
        ErrorCode::DpopJwkInvalid,
        ErrorCode::DpopSignatureInvalid,
        ErrorCode::DpopMissingClaims,
        ErrorCode::DpopMethodMismatch,
        ErrorCode::DpopHtuMismatch,
        ErrorCode::DpopIatSkew,
        ErrorCode::DpopAthMissing,
        ErrorCode::DpopAthMismatch,
        ErrorCode::DpopJktMismatch,
        ErrorCode::DpopReplay,
        ErrorCode::AdminAuthMissing,
        ErrorCode::AdminAuthInvalid,
        ErrorCode::WorkloadIpDenied,
        ErrorCode::IdentityLifetimeExceeded,
        ErrorCode::SessionScopeMissing,
        ErrorCode::ManifestWorkloadMismatch,
        ErrorCode::IntegrationDisabled,
        ErrorCode::IntegrationHostsChanged,
        ErrorCode::RequestSchemeNotAllowed,
        ErrorCode::RequestHostNotAllowed,
        ErrorCode::RequestPortNotAllowed,
        ErrorCode::RequestQueryKeyNotAllowlisted,
        ErrorCode::RequestQueryDuplicateKeyForbidden,
        ErrorCode::RequestQueryKeyReserved,
        ErrorCode::RequestContentTypeNotAllowed,
        ErrorCode::RequestStreamingNotSupported,
        ErrorCode::NoMatchingGroup,
        ErrorCode::PolicyDeny,
        ErrorCode::PolicyDefaultDeny,
        ErrorCode::PolicyConstraintFailed,
        ErrorCode::ResolvedIpDeniedMetadataRange,
        ErrorCode::ResolvedIpDeniedLoopback,
        ErrorCode::ResolvedIpDeniedPrivateRange,
        ErrorCode::ResolvedIpDeniedLinkLocal,
        ErrorCode::ResolvedIpDeniedReserved,
        ErrorCode::AdminForbidden,
        ErrorCode::AdminTenantForbidden,
        ErrorCode::RouteNotFound,
        ErrorCode::IntegrationNotFound,
        ErrorCode::TemplateVersionNotFound,
        ErrorCode::ApprovalNotFound,
        ErrorCode::ManifestNoRules,
        ErrorCode::TenantNotFound,
        ErrorCode::WorkloadNotFound,
        ErrorCode::PolicyNotFound,
        ErrorCode::TokenNotFound,
        ErrorCode::CertificateNotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::EnrollmentTokenUsed,
        ErrorCode::IdempotencyKeyConflict,
        ErrorCode::IdempotencyRequestInProgress,
        ErrorCode::ApprovalNotPending,
        ErrorCode::TemplateVersionImmutable,
        ErrorCode::TemplateVersionExists,
        ErrorCode::TenantNameConflict,
        ErrorCode::WorkloadNameConflict,
        ErrorCode::IntegrationNameConflict,
        ErrorCode::LastOwnerToken,
        ErrorCode::RequestBodyTooLarge,
        ErrorCode::ContentTypeInvalid,
        ErrorCode::PolicyRateLimited,
        ErrorCode::SessionRateLimited,
        ErrorCode::InternalError,
        ErrorCode::DnsResolutionFailed,
        ErrorCode::DnsResolutionEmpty,
        ErrorCode::UpstreamNetworkError,
        ErrorCode::RedirectDenied,
        ErrorCode::UpstreamResponseTooLarge,
        ErrorCode::UpstreamStreamingNotSupported,
        ErrorCode::UpstreamEncodingNotSupported,
        ErrorCode::IntegrationSecretUnavailable,
        ErrorCode::AuditWriteFailed,
        ErrorCode::StorageUnavailable,
        ErrorCode::CoordinationUnavailable,
        ErrorCode::UpstreamTimeout,
        ErrorCode::TemplateNotFoundOnWrite,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::RequestBodyMissing => "request_body_missing",
            ErrorCode::RequestBodyInvalidJson => "request_body_invalid_json",
            ErrorCode::RequestBodySchemaInvalid => "request_body_schema_invalid",
            ErrorCode::PathParamInvalid => "path_param_invalid",
            ErrorCode::QueryInvalid => "query_invalid",
            ErrorCode::IdempotencyKeyInvalid => "idempotency_key_invalid",
            ErrorCode::SessionScopeInvalid => "session_scope_invalid",
            ErrorCode::RequestedTtlExceedsMax => "requested_ttl_exceeds_max",
            ErrorCode::CsrInvalid => "csr_invalid",
            ErrorCode::CsrKeyUnsupported => "csr_key_unsupported",
            ErrorCode::RequestUrlInvalid => "request_url_invalid",
            ErrorCode::RequestUrlUserinfoForbidden => "request_url_userinfo_forbidden",
            ErrorCode::RequestUrlFragmentForbidden => "request_url_fragment_forbidden",
            ErrorCode::RequestPercentEncodingInvalid => "request_percent_encoding_invalid",
            ErrorCode::RequestHeaderNameInvalid => "request_header_name_invalid",
            ErrorCode::RequestHeaderValueInvalid => "request_header_value_invalid",
            ErrorCode::RequestBodyBase64Invalid => "request_body_base64_invalid",
            ErrorCode::RequestContentTypeMissing => "request_content_type_missing",
            ErrorCode::AmbiguousFraming => "ambiguous_framing",
            ErrorCode::TemplateInvalid => "template_invalid",
            ErrorCode::TemplateHostInvalid => "template_host_invalid",
            ErrorCode::TemplateHostWildcardForbidden => "template_host_wildcard_forbidden",
            ErrorCode::TemplateAllowlistDuplicate => "template_allowlist_duplicate",
            ErrorCode::TemplateGroupDuplicate => "template_group_duplicate",
            ErrorCode::TemplatePathPatternUnanchored => "template_path_pattern_unanchored",
            ErrorCode::TemplatePathPatternOverbroad => "template_path_pattern_overbroad",
            ErrorCode::TemplatePathPatternInvalid => "template_path_pattern_invalid",
            ErrorCode::TemplateHeaderAllowlistInvalid => "template_header_allowlist_invalid",
            ErrorCode::TemplateVersionNotIncremented => "template_version_not_incremented",
            ErrorCode::TemplateProviderMismatch => "template_provider_mismatch",
            ErrorCode::TemplateNotFound => "template_not_found",
            ErrorCode::PolicyInvalid => "policy_invalid",
            ErrorCode::IpAllowlistInvalid => "ip_allowlist_invalid",
            ErrorCode::SecretInvalid => "secret_invalid",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::MtlsRequired => "mtls_required",
            ErrorCode::WorkloadDisabled => "workload_disabled",
            ErrorCode::CertificateRevoked => "certificate_revoked",
            ErrorCode::CertificateExpired => "certificate_expired",
            ErrorCode::EnrollmentTokenInvalid => "enrollment_token_invalid",
            ErrorCode::EnrollmentTokenExpired => "enrollment_token_expired",
            ErrorCode::SessionMissing => "session_missing",
            ErrorCode::SessionInvalid => "session_invalid",
            ErrorCode::SessionWorkloadMismatch => "session_workload_mismatch",
            ErrorCode::SessionCertMismatch => "session_cert_mismatch",
            ErrorCode::SessionDpopRequired => "session_dpop_required",
            ErrorCode::DpopMissing => "dpop_missing",
            ErrorCode::DpopMalformed => "dpop_malformed",
            ErrorCode::DpopBadTyp => "dpop_bad_typ",
            ErrorCode::DpopAlgForbidden => "dpop_alg_forbidden",
            ErrorCode::DpopJwkInvalid => "dpop_jwk_invalid",
            ErrorCode::DpopSignatureInvalid => "dpop_signature_invalid",
            ErrorCode::DpopMissingClaims => "dpop_missing_claims",
            ErrorCode::DpopMethodMismatch => "dpop_method_mismatch",
            ErrorCode::DpopHtuMismatch => "dpop_htu_mismatch",
            ErrorCode::DpopIatSkew => "dpop_iat_skew",
            ErrorCode::DpopAthMissing => "dpop_ath_missing",
            ErrorCode::DpopAthMismatch => "dpop_ath_mismatch",
            ErrorCode::DpopJktMismatch => "dpop_jkt_mismatch",
            ErrorCode::DpopReplay => "dpop_replay",
            ErrorCode::AdminAuthMissing => "admin_auth_missing",
            ErrorCode::AdminAuthInvalid => "admin_auth_invalid",
            ErrorCode::WorkloadIpDenied => "workload_ip_denied",
            ErrorCode::IdentityLifetimeExceeded => "identity_lifetime_exceeded",
            ErrorCode::SessionScopeMissing => "session_scope_missing",
            ErrorCode::ManifestWorkloadMismatch => "manifest_workload_mismatch",
            ErrorCode::IntegrationDisabled => "integration_disabled",
            ErrorCode::IntegrationHostsChanged => "integration_hosts_changed",
            ErrorCode::RequestSchemeNotAllowed => "request_scheme_not_allowed",
            ErrorCode::RequestHostNotAllowed => "request_host_not_allowed",
            ErrorCode::RequestPortNotAllowed => "request_port_not_allowed",
            ErrorCode::RequestQueryKeyNotAllowlisted => "request_query_key_not_allowlisted",
            ErrorCode::RequestQueryDuplicateKeyForbidden => "request_query_duplicate_key_forbidden",
            ErrorCode::RequestQueryKeyReserved => "request_query_key_reserved",
            ErrorCode::RequestContentTypeNotAllowed => "request_content_type_not_allowed",
            ErrorCode::RequestStreamingNotSupported => "request_streaming_not_supported",
            ErrorCode::NoMatchingGroup => "no_matching_group",
            ErrorCode::PolicyDeny => "policy_deny",
            ErrorCode::PolicyDefaultDeny => "policy_default_deny",
            ErrorCode::PolicyConstraintFailed => "policy_constraint_failed",
            ErrorCode::ResolvedIpDeniedMetadataRange => "resolved_ip_denied_metadata_range",
            ErrorCode::ResolvedIpDeniedLoopback => "resolved_ip_denied_loopback",
            ErrorCode::ResolvedIpDeniedPrivateRange => "resolved_ip_denied_private_range",
            ErrorCode::ResolvedIpDeniedLinkLocal => "resolved_ip_denied_link_local",
            ErrorCode::ResolvedIpDeniedReserved => "resolved_ip_denied_reserved",
            ErrorCode::AdminForbidden => "admin_forbidden",
            ErrorCode::AdminTenantForbidden => "admin_tenant_forbidden",
            ErrorCode::RouteNotFound => "route_not_found",
            ErrorCode::IntegrationNotFound => "integration_not_found",
            ErrorCode::TemplateVersionNotFound => "template_version_not_found",
            ErrorCode::ApprovalNotFound => "approval_not_found",
            ErrorCode::ManifestNoRules => "manifest_no_rules",
            ErrorCode::TenantNotFound => "tenant_not_found",
            ErrorCode::WorkloadNotFound => "workload_not_found",
            ErrorCode::PolicyNotFound => "policy_not_found",
            ErrorCode::TokenNotFound => "token_not_found",
            ErrorCode::CertificateNotFound => "certificate_not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::EnrollmentTokenUsed => "enrollment_token_used",
            ErrorCode::IdempotencyKeyConflict => "idempotency_key_conflict",
            ErrorCode::IdempotencyRequestInProgress => "idempotency_request_in_progress",
            ErrorCode::ApprovalNotPending => "approval_not_pending",
            ErrorCode::TemplateVersionImmutable => "template_version_immutable",
            ErrorCode::TemplateVersionExists => "template_version_exists",
            ErrorCode::TenantNameConflict => "tenant_name_conflict",
            ErrorCode::WorkloadNameConflict => "workload_name_conflict",
            ErrorCode::IntegrationNameConflict => "integration_name_conflict",
            ErrorCode::LastOwnerToken => "last_owner_token",
            ErrorCode::RequestBodyTooLarge => "request_body_too_large",
            ErrorCode::ContentTypeInvalid => "content_type_invalid",
            ErrorCode::PolicyRateLimited => "policy_rate_limited",
            ErrorCode::SessionRateLimited => "session_rate_limited",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::DnsResolutionFailed => "dns_resolution_failed",
            ErrorCode::DnsResolutionEmpty => "dns_resolution_empty",
            ErrorCode::UpstreamNetworkError => "upstream_network_error",
            ErrorCode::RedirectDenied => "redirect_denied",
            ErrorCode::UpstreamResponseTooLarge => "upstream_response_too_large",
            ErrorCode::UpstreamStreamingNotSupported => "upstream_streaming_not_supported",
            ErrorCode::UpstreamEncodingNotSupported => "upstream_encoding_not_supported",
            ErrorCode::IntegrationSecretUnavailable => "integration_secret_unavailable",
            ErrorCode::AuditWriteFailed => "audit_write_failed",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::CoordinationUnavailable => "coordination_unavailable",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
            ErrorCode::TemplateNotFoundOnWrite => "template_not_found",
        }
    }

    /// The HTTP status code of this error.
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::RequestBodyMissing
            | ErrorCode::RequestBodyInvalidJson
            | ErrorCode::RequestBodySchemaInvalid
            | ErrorCode::PathParamInvalid
            | ErrorCode::QueryInvalid
            | ErrorCode::IdempotencyKeyInvalid
            | ErrorCode::SessionScopeInvalid
            | ErrorCode::RequestedTtlExceedsMax
            | ErrorCode::CsrInvalid
            | ErrorCode::CsrKeyUnsupported
            | ErrorCode::RequestUrlInvalid
            | ErrorCode::RequestUrlUserinfoForbidden
            | ErrorCode::RequestUrlFragmentForbidden
            | ErrorCode::RequestPercentEncodingInvalid
            | ErrorCode::RequestHeaderNameInvalid
            | ErrorCode::RequestHeaderValueInvalid
            | ErrorCode::RequestBodyBase64Invalid
            | ErrorCode::RequestContentTypeMissing
            | ErrorCode::AmbiguousFraming
            | ErrorCode::TemplateInvalid
            | ErrorCode::TemplateHostInvalid
            | ErrorCode::TemplateHostWildcardForbidden
            | ErrorCode::TemplateAllowlistDuplicate
            | ErrorCode::TemplateGroupDuplicate
            | ErrorCode::TemplatePathPatternUnanchored
            | ErrorCode::TemplatePathPatternOverbroad
            | ErrorCode::TemplatePathPatternInvalid
            | ErrorCode::TemplateHeaderAllowlistInvalid
            | ErrorCode::TemplateVersionNotIncremented
            | ErrorCode::TemplateProviderMismatch
            | ErrorCode::PolicyInvalid
            | ErrorCode::IpAllowlistInvalid
            | ErrorCode::SecretInvalid
            | ErrorCode::ValidationFailed => 400,
            ErrorCode::MtlsRequired
            | ErrorCode::WorkloadDisabled
            | ErrorCode::CertificateRevoked
            | ErrorCode::CertificateExpired
            | ErrorCode::EnrollmentTokenInvalid
            | ErrorCode::EnrollmentTokenExpired
            | ErrorCode::SessionMissing
            | ErrorCode::SessionInvalid
            | ErrorCode::SessionWorkloadMismatch
            | ErrorCode::SessionCertMismatch
            | ErrorCode::SessionDpopRequired
            | ErrorCode::DpopMissing
            | ErrorCode::DpopMalformed
            | ErrorCode::DpopBadTyp
            | ErrorCode::DpopAlgForbidden
            | ErrorCode::DpopJwkInvalid
            | ErrorCode::DpopSignatureInvalid
            | ErrorCode::DpopMissingClaims
            | ErrorCode::DpopMethodMismatch
            | ErrorCode::DpopHtuMismatch
            | ErrorCode::DpopIatSkew
            | ErrorCode::DpopAthMissing
            | ErrorCode::DpopAthMismatch
            | ErrorCode::DpopJktMismatch
            | ErrorCode::DpopReplay
            | ErrorCode::AdminAuthMissing
            | ErrorCode::AdminAuthInvalid => 401,
            ErrorCode::WorkloadIpDenied
            | ErrorCode::IdentityLifetimeExceeded
            | ErrorCode::SessionScopeMissing
            | ErrorCode::ManifestWorkloadMismatch
            | ErrorCode::IntegrationDisabled
            | ErrorCode::IntegrationHostsChanged
            | ErrorCode::RequestSchemeNotAllowed
            | ErrorCode::RequestHostNotAllowed
            | ErrorCode::RequestPortNotAllowed
            | ErrorCode::RequestQueryKeyNotAllowlisted
            | ErrorCode::RequestQueryDuplicateKeyForbidden
            | ErrorCode::RequestQueryKeyReserved
            | ErrorCode::RequestContentTypeNotAllowed
            | ErrorCode::RequestStreamingNotSupported
            | ErrorCode::NoMatchingGroup
            | ErrorCode::PolicyDeny
            | ErrorCode::PolicyDefaultDeny
            | ErrorCode::PolicyConstraintFailed
            | ErrorCode::ResolvedIpDeniedMetadataRange
            | ErrorCode::ResolvedIpDeniedLoopback
            | ErrorCode::ResolvedIpDeniedPrivateRange
            | ErrorCode::ResolvedIpDeniedLinkLocal
            | ErrorCode::ResolvedIpDeniedReserved
            | ErrorCode::AdminForbidden
            | ErrorCode::AdminTenantForbidden => 403,
            ErrorCode::RouteNotFound
            | ErrorCode::TemplateNotFound
            | ErrorCode::IntegrationNotFound
            | ErrorCode::TemplateVersionNotFound
            | ErrorCode::ApprovalNotFound
            | ErrorCode::ManifestNoRules
            | ErrorCode::TenantNotFound
            | ErrorCode::WorkloadNotFound
            | ErrorCode::PolicyNotFound
            | ErrorCode::TokenNotFound
            | ErrorCode::CertificateNotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::EnrollmentTokenUsed
            | ErrorCode::IdempotencyKeyConflict
            | ErrorCode::IdempotencyRequestInProgress
            | ErrorCode::ApprovalNotPending
            | ErrorCode::TemplateVersionImmutable
            | ErrorCode::TemplateVersionExists
            | ErrorCode::TenantNameConflict
            | ErrorCode::WorkloadNameConflict
            | ErrorCode::IntegrationNameConflict
            | ErrorCode::LastOwnerToken => 409,
            ErrorCode::RequestBodyTooLarge => 413,
            ErrorCode::ContentTypeInvalid => 415,
            ErrorCode::PolicyRateLimited | ErrorCode::SessionRateLimited => 429,
            ErrorCode::InternalError => 500,
            ErrorCode::DnsResolutionFailed
            | ErrorCode::DnsResolutionEmpty
            | ErrorCode::UpstreamNetworkError
            | ErrorCode::RedirectDenied
            | ErrorCode::UpstreamResponseTooLarge
            | ErrorCode::UpstreamStreamingNotSupported
            | ErrorCode::UpstreamEncodingNotSupported => 502,
            ErrorCode::IntegrationSecretUnavailable
            | ErrorCode::AuditWriteFailed
            | ErrorCode::StorageUnavailable
            | ErrorCode::CoordinationUnavailable => 503,
            ErrorCode::UpstreamTimeout => 504,
            ErrorCode::TemplateNotFoundOnWrite => 400,
        }
    }

    /// Parses a wire code (the 404 form for `template_not_found`).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == code)
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
    }
}
