//! `impl_catalog_store!`: the SQL of [`crate::catalog::CatalogStore`] for both backends.

macro_rules! impl_catalog_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::catalog::CatalogStore for $store {}
    };
}

pub(crate) use impl_catalog_store;
