//! Per-request observation for gRPC and HTTP alike: a request id (taken from `x-request-id` or
//! made up, echoed back), a tracing span, and metrics recorded when the response body ends, so
//! streaming calls are timed to their end and gRPC calls counted by their final status.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tracing::Instrument;

use crate::metrics::{Metrics, RequestLabels};

const REQUEST_ID: &str = "x-request-id";
/// gRPC's UNIMPLEMENTED: the method path came from the client and names nothing we serve.
const GRPC_UNIMPLEMENTED: &str = "12";

fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/grpc"))
}

fn new_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        nanos ^ std::process::id()
    });
    format!("{prefix:08x}-{:08x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A client-supplied id is kept only if it is short and printable, so it is safe to log.
fn client_request_id(headers: &HeaderMap) -> Option<String> {
    let id = headers.get(REQUEST_ID)?.to_str().ok()?;
    (!id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())).then(|| id.to_string())
}

pub(crate) async fn middleware(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let grpc = is_grpc(request.headers());
    let route = if grpc {
        request.uri().path().to_string()
    } else {
        request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".into())
    };
    let request_id = client_request_id(request.headers()).unwrap_or_else(new_request_id);
    let span = tracing::debug_span!("request", id = %request_id, method = %request.method(), route = %route);
    let start = Instant::now();
    metrics.in_flight.inc();

    let mut response = next.run(request).instrument(span.clone()).await;

    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let (protocol, code) = if grpc {
        let code = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).map(str::to_string);
        ("grpc", code)
    } else {
        ("http", Some(response.status().as_u16().to_string()))
    };
    let route = if code.as_deref() == Some(GRPC_UNIMPLEMENTED) { "unknown".to_string() } else { route };
    let completion =
        Completion { metrics, labels: RequestLabels { protocol, route, code: code.unwrap_or_default() }, start, span };
    response.map(|inner| Body::new(ObservedBody { inner, completion: Some(completion) }))
}

/// Records the request when dropped: at the end of the body, or when the client goes away.
struct Completion {
    metrics: Arc<Metrics>,
    labels: RequestLabels,
    start: Instant,
    span: tracing::Span,
}

impl Drop for Completion {
    fn drop(&mut self) {
        if self.labels.code.is_empty() {
            // A gRPC response whose trailers never came: the client cancelled or the stream broke.
            self.labels.code = "cancelled".into();
        }
        let elapsed = self.start.elapsed();
        self.metrics.in_flight.dec();
        self.metrics.requests.get_or_create(&self.labels).inc();
        self.metrics.duration.get_or_create(&self.labels).observe(elapsed.as_secs_f64());
        self.span.in_scope(
            || tracing::debug!(code = %self.labels.code, elapsed_ms = elapsed.as_secs_f64() * 1e3, "request finished"),
        );
    }
}

pin_project_lite::pin_project! {
    struct ObservedBody {
        #[pin]
        inner: Body,
        completion: Option<Completion>,
    }
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                let status = frame.trailers_ref().and_then(|t| t.get("grpc-status")).and_then(|v| v.to_str().ok());
                if let (Some(status), Some(completion)) = (status, this.completion.as_mut()) {
                    completion.labels.code = status.to_string();
                }
            }
            Some(Err(_)) | None => {
                this.completion.take();
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
