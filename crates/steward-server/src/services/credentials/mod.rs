//! Credentials: the typed AAD context of every sealed row and sealing/opening
//! ([`envelope`]), and the integration secret of step 11 as a [`Credential`] that knows how it is
//! injected, which needles the scrubber needs and what an upstream 401 means — OAuth2 included
//! ([`oauth2`]), so the execute pipeline never branches on the secret type.

pub mod envelope;
pub mod oauth2;
mod secret;

pub use secret::{Credential, CredentialUse, load};
