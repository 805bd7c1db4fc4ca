//! The GovernanceStore part of the storage API: approvals, audit search, manifest signing key rotation.
//! Implemented once for both backends by `sql::governance::impl_governance_store!`; tested by the shared
//! conformance suite.

use async_trait::async_trait;

#[allow(unused_imports)]
use crate::StoreError;

#[async_trait]
pub trait GovernanceStore: Send + Sync {}
