//! The IdentityStore part of the storage API: admin tokens (list, revoke, owner count), tenants, workloads, enrollment tokens, issued certificates and sessions.
//! Implemented once for both backends by `sql::identity::impl_identity_store!`; tested by the shared
//! conformance suite.

use async_trait::async_trait;

#[allow(unused_imports)]
use crate::StoreError;

#[async_trait]
pub trait IdentityStore: Send + Sync {}
