//! `impl_identity_store!`: the SQL of [`crate::identity::IdentityStore`] for both backends.

macro_rules! impl_identity_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::identity::IdentityStore for $store {}
    };
}

pub(crate) use impl_identity_store;
