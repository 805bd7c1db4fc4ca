//! Who is calling: the workload behind a data-plane request (mTLS certificate → [`MtlsPrincipal`],
//! `spec/data-plane.md` "mTLS identity"), its IP allowlist, and the admin behind an admin-plane
//! request (bearer token → [`admin::AdminPrincipal`], with the role table). The HTTP extractors that
//! call these live with the routes.

pub mod admin;
pub mod ip_allowlist;
pub mod principal;

pub use principal::{MtlsPrincipal, identify, identity_of};
