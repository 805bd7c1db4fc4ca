//! `impl_governance_store!`: the SQL of [`crate::governance::GovernanceStore`] for both backends.

macro_rules! impl_governance_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::governance::GovernanceStore for $store {}
    };
}

pub(crate) use impl_governance_store;
