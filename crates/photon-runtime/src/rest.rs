//! Helpers every service's REST API shares: the error document, and how bytes that may not be
//! UTF-8 appear in JSON.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// The platform's REST error: `{"error":{"code","message"}}` with `status`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (status, axum::Json(body)).into_response()
}

/// The REST form of a gRPC status (for REST routes that adapt onto gRPC handlers).
pub fn status_response(status: &tonic::Status) -> Response {
    use tonic::Code;
    let (http, code) = match status.code() {
        Code::InvalidArgument | Code::OutOfRange => (StatusCode::BAD_REQUEST, "invalid_argument"),
        Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        Code::AlreadyExists => (StatusCode::CONFLICT, "already_exists"),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied"),
        Code::FailedPrecondition | Code::Aborted => (StatusCode::CONFLICT, "failed_precondition"),
        Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "resource_exhausted"),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    error_response(http, code, status.message())
}

/// Adds `bytes` to `doc` as `field` when it is UTF-8 text, else as `field_base64`.
pub fn put_bytes(doc: &mut Map<String, Value>, field: &str, bytes: Vec<u8>) {
    match String::from_utf8(bytes) {
        Ok(text) => {
            doc.insert(field.to_string(), Value::String(text));
        }
        Err(bytes) => {
            doc.insert(format!("{field}_base64"), Value::String(base64(bytes.as_bytes())));
        }
    }
}

/// Standard base64 with padding (RFC 4648).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc_4648() {
        for (input, expected) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(super::base64(input.as_bytes()), expected);
        }
    }
}
