//! HTTP conventions shared by both listeners: errors, request context, JSON bodies.

pub mod body;
pub mod context;
pub mod error;

pub use body::{BodyLimit, DeferredBody, JsonBody, OptionalJsonBody};
pub use context::{ListenerName, LogFields, RequestContext};
pub use error::ApiError;
