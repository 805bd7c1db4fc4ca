//! The CatalogStore part of the storage API: template versions, integrations with their secret versions (host binding, crypto-shredding) and policies.
//! Implemented once for both backends by `sql::catalog::impl_catalog_store!`; tested by the shared
//! conformance suite.

use async_trait::async_trait;

#[allow(unused_imports)]
use crate::StoreError;

#[async_trait]
pub trait CatalogStore: Send + Sync {}
