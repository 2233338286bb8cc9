//! Request metrics: a middleware that times each request and records it by method, route pattern
//! and status in `session_http_request_duration_seconds`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::Metrics;

/// Times the rest of the stack and records the request. The route label is the matched pattern
/// (`/sessions/{id}`), or `unmatched` when there is none, never the raw path: every session id
/// would otherwise become a series of its own.
///
/// Installed with `from_fn_with_state(metrics, track)` as a `route_layer`, it sees only requests
/// that matched a route; WebSocket upgrades count when the 101 is returned, not when the socket
/// closes.
pub async fn track(
    State(metrics): State<Arc<Metrics>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // Cloning a standard method copies an enum; only extension methods allocate.
    let method = request.method().clone();
    let response = next.run(request).await;
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    metrics.observe_http(method.as_str(), route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::middleware::from_fn_with_state;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    async fn call(router: &Router, uri: &str) -> StatusCode {
        let request = Request::get(uri).body(Body::empty()).unwrap();
        router.clone().oneshot(request).await.unwrap().status()
    }

    fn items() -> Router {
        Router::new().route("/items/{id}", get(|| async { "item" }))
    }

    #[tokio::test]
    async fn requests_are_labelled_by_route_pattern_and_unrouted_ones_are_not_recorded() {
        let metrics = Arc::new(Metrics::new());
        let router = items().route_layer(from_fn_with_state(metrics.clone(), track));

        assert_eq!(call(&router, "/items/7").await, StatusCode::OK);
        assert_eq!(call(&router, "/nowhere").await, StatusCode::NOT_FOUND);

        let text = metrics.encode(&[]);
        let expected =
            r#"session_http_request_duration_seconds_count{method="GET",route="/items/{id}",status="200"} 1"#;
        assert!(text.lines().any(|line| line == expected), "no line `{expected}` in:\n{text}");
        assert!(!text.contains("/items/7"), "raw path recorded:\n{text}");
        assert!(!text.contains("/nowhere") && !text.contains("unmatched"), "unrouted request recorded:\n{text}");
    }

    #[tokio::test]
    async fn as_an_outer_layer_it_records_unrouted_requests_as_unmatched() {
        let metrics = Arc::new(Metrics::new());
        let router = items().layer(from_fn_with_state(metrics.clone(), track));

        assert_eq!(call(&router, "/nowhere").await, StatusCode::NOT_FOUND);

        let text = metrics.encode(&[]);
        let expected = r#"session_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 1"#;
        assert!(text.lines().any(|line| line == expected), "no line `{expected}` in:\n{text}");
        assert!(!text.contains("/nowhere"), "raw path recorded:\n{text}");
    }
}
