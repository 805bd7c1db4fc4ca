//! `steward-canon` owns what a request *means* before anything is sent: the template model and its
//! publish-time validation ([`Template::from_json`]), the strict RFC 3986 canonicalizer
//! ([`canonicalize`]) that turns an execute `request` into a [`CanonicalRequest`] and its descriptor
//! digest, and path-group matching.
//!
//! It is pure: no I/O, no clock, no async runtime, no storage or network crates (no tokio, axum, sqlx,
//! redis), and it never sees a secret. Every rejection carries the exact spec [`ErrorCode`]; nothing
//! downstream re-checks what a `Template` or `CanonicalRequest` already guarantees.
//!
//! [`ErrorCode`]: steward_types::ErrorCode

mod canon;
mod error;
mod host;
pub mod http;
mod method;
mod percent;
mod template;
mod uri;

#[cfg(test)]
mod fixtures;

pub use canon::{
    CanonContext, CanonicalRequest, ExecuteRequest, HeaderField, QueryPair, RequestDescriptor, canonicalize,
};
pub use error::{CanonError, TemplateError};
pub use host::normalize_host;
pub use method::Method;
pub use template::{
    ApprovalMode, BodyPolicy, DuplicateQueryKeys, HeaderAllowlist, Injection, InjectionKind, PathGroup,
    PathPattern, RiskTier, SECRET_PLACEHOLDER, Template, entries_allow,
};
