//! JSON request bodies, checked in the spec's order: content type (415), size (413), empty (400
//! `request_body_missing`), syntax (400 `request_body_invalid_json`), shape (400
//! `request_body_schema_invalid`, naming the field). Identity extractors run before these, so the
//! check order "route → identity → body" holds by construction of the handler signatures.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;
use steward_types::ErrorCode;

use super::error::ApiError;

/// The body size limit of the current route, set by a layer (`data_plane.max_body_bytes` unless a
/// route says otherwise).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A required JSON body.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// A body that may be empty (then it means `{}`, i.e. `T::default()`), with any or no content type.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        check_content_type(&request)?;
        let bytes = read_limited(request).await?;
        parse(&bytes).map(JsonBody)
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = check_content_type(&request);
        let declared_length = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // A body that is known to be non-empty gets the content-type check before the size check,
        // as for required bodies; an empty one means `{}` whatever its content type.
        if declared_length.is_some_and(|n| n > 0) {
            content_type.clone()?;
        }
        let bytes = read_limited(request).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonBody(T::default()));
        }
        content_type?;
        parse(&bytes).map(OptionalJsonBody)
    }
}

/// A body read now but judged later: admin handlers must check role, tenant and existence before
/// the body (`spec/control-plane.md`), yet the body arrives with the request. Reading it up front is
/// bounded by the route's limit; every body error is held back until [`DeferredBody::json`] or
/// [`DeferredBody::optional_json`] is called, so the spec's check order holds.
#[derive(Debug)]
pub struct DeferredBody {
    content_type: Result<(), ApiError>,
    bytes: Result<bytes::Bytes, ApiError>,
}

impl<S: Send + Sync> FromRequest<S> for DeferredBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = check_content_type(&request);
        let bytes = read_limited(request).await;
        Ok(Self { content_type, bytes })
    }
}

impl DeferredBody {
    /// A required JSON body, with the same checks and order as [`JsonBody`].
    pub fn json<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        self.content_type?;
        parse(&self.bytes?)
    }

    /// An optional body: empty (with any content type) means `T::default()`.
    pub fn optional_json<T: DeserializeOwned + Default>(self) -> Result<T, ApiError> {
        let bytes = match self.bytes {
            Ok(bytes) => bytes,
            Err(error) => {
                self.content_type?;
                return Err(error);
            }
        };
        if bytes.is_empty() {
            return Ok(T::default());
        }
        self.content_type?;
        parse(&bytes)
    }
}

fn content_type_error() -> ApiError {
    ApiError::new(ErrorCode::ContentTypeInvalid, "content-type must be application/json")
}

fn check_content_type(request: &Request) -> Result<(), ApiError> {
    let value = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = value.split(';').next().unwrap_or("").trim();
    if media_type.eq_ignore_ascii_case("application/json") { Ok(()) } else { Err(content_type_error()) }
}

async fn read_limited(request: Request) -> Result<bytes::Bytes, ApiError> {
    let limit = request.extensions().get::<BodyLimit>().map(|l| l.0).unwrap_or(1_048_576);
    let too_large = || {
        ApiError::new(
            ErrorCode::RequestBodyTooLarge,
            format!("the request body is larger than {limit} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let body: Body = request.into_body();
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(error) => Err(ApiError::new(
            ErrorCode::RequestBodyInvalidJson,
            format!("the request body could not be read: {error}"),
        )),
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::new(ErrorCode::RequestBodyMissing, "a JSON request body is required"));
    }
    // Syntax first, so "not JSON" and "wrong shape" get different codes.
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(ErrorCode::RequestBodyInvalidJson, format!("the request body is not valid JSON: {e}"))
    })?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let message = if path == "." { inner } else { format!("{path}: {inner}") };
        ApiError::new(ErrorCode::RequestBodySchemaInvalid, message)
    })
}

#[cfg(test)]
mod tests;
