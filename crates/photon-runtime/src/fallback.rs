//! What a request for no known route gets: gRPC callers UNIMPLEMENTED (as tonic would say),
//! everyone else a 404 in the platform's REST error shape.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

pub(crate) async fn handler(request: Request) -> Response {
    let grpc = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if grpc {
        let status = tonic::Status::unimplemented(format!("no such gRPC method: {}", request.uri().path()));
        let mut response = status.into_http::<axum::body::Body>();
        response.headers_mut().insert("content-type", HeaderValue::from_static("application/grpc"));
        return response;
    }
    let message = format!("no route for {} {}", request.method(), request.uri().path());
    crate::rest::error_response(StatusCode::NOT_FOUND, "not_found", &message)
}
