//! Who is calling: the workload behind a data-plane request (mTLS certificate → [`MtlsPrincipal`],
//! `spec/data-plane.md` "mTLS identity"), its IP allowlist, its enrollment and certificate renewal
//! ([`enrollment`]), its sessions ([`session`]: issuing and the per-request checks) and DPoP proofs
//! ([`dpop`]); and the admin behind an admin-plane request (bearer token →
//! [`admin::AdminPrincipal`], with the role table). The HTTP extractors and handlers that call these
//! live with the routes.

pub mod admin;
pub mod dpop;
pub mod enrollment;
pub mod ip_allowlist;
pub mod principal;
pub mod session;

pub use principal::{MtlsPrincipal, identify, identity_of};
