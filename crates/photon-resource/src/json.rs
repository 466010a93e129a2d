//! Request bodies as JSON, with errors that name the field at fault (`spec.ttl: invalid type:
//! string "x", expected u32`) instead of the extractor's generic rejection.

use serde::de::DeserializeOwned;

use crate::error::ResourceError;

/// The largest JSON body a resource API reads.
pub const MAX_BODY_BYTES: usize = 1 << 20;

pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ResourceError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ResourceError::TooLarge(format!(
            "the request body is {} bytes; at most {MAX_BODY_BYTES} are accepted",
            body.len()
        )));
    }
    if body.is_empty() {
        return Err(ResourceError::Invalid { field: "body".into(), message: "a JSON body is required".into() });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        // Syntax errors have no path ("." or "?"): the body itself is at fault.
        let field = if path == "." || path == "?" { "body".to_string() } else { path };
        ResourceError::Invalid { field, message: e.inner().to_string() }
    })
}

/// [`parse`] of a value that sits at `root` of the message it came in (a gRPC call's
/// `spec_json`): field paths name it as the REST body would (`spec.port`), and a body that is
/// not JSON at all is named `field`.
pub fn parse_as<T: DeserializeOwned>(body: &[u8], root: &str, field: &str) -> Result<T, ResourceError> {
    parse(body).map_err(|e| match e {
        ResourceError::Invalid { field: f, message } if f == "body" => ResourceError::Invalid { field: field.to_string(), message },
        ResourceError::Invalid { field: f, message } => ResourceError::Invalid { field: format!("{root}.{f}"), message },
        other => other,
    })
}

/// Middleware (`from_fn_with_state(limit, ...)`) refusing a request whose declared length is
/// over `limit` before reading any of it: a client that asked `Expect: 100-continue` never
/// sends the body and gets a clear 413; one that did not gets it without the server reading on.
pub async fn refuse_over(
    axum::extract::State(limit): axum::extract::State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|l| *l > limit as u64) {
        return ResourceError::TooLarge(format!("the request body is {length} bytes; at most {limit} are accepted"))
            .into_response();
    }
    next.run(request).await
}

/// The largest body of a bulk request (a zone file import).
pub const MAX_BULK_BYTES: usize = 16 << 20;
