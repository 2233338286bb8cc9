//! Assertions on responses and small token utilities shared by the test modules.

use chrono::{DateTime, Utc};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use session_service::tokens::RefreshToken;

/// The body of a typical `POST /sessions`.
pub(crate) fn session_body(user_id: &str) -> Value {
    json!({
        "user_id": user_id,
        "device": {
            "id": "device-1",
            "platform": "ios",
            "name": "Ana's iPhone",
            "model": "iPhone15,2",
            "app_version": "2.3.1",
            "fingerprint": "fp-abc"
        },
        "ip": "203.0.113.7",
        "user_agent": "GameClient/2.3.1",
        "metadata": { "login": "password" }
    })
}

/// Asserts the status and returns the JSON body.
pub(crate) async fn expect_json(resp: Response, status: StatusCode) -> Value {
    let actual = resp.status();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = resp.text().await.expect("a body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts an RFC 9457 problem (content type and members) and returns its status and `code`.
pub(crate) async fn problem(resp: Response) -> (StatusCode, String) {
    let body = problem_body(resp).await;
    let status = StatusCode::from_u16(body["status"].as_u64().expect("status") as u16).expect("a status");
    (status, body["code"].as_str().expect("code").to_owned())
}

/// Asserts an RFC 9457 problem and returns the whole body.
pub(crate) async fn problem_body(resp: Response) -> Value {
    let status = resp.status();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let challenge = resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = resp.text().await.expect("a body");
    assert_eq!(content_type.as_deref(), Some("application/problem+json"), "status {status}, body: {text}");
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(challenge.as_deref(), Some("Bearer"), "every 401 carries a Bearer challenge: {text}");
    }
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_eq!(body["status"].as_u64(), Some(u64::from(status.as_u16())), "{body}");
    let code = body["code"].as_str().expect("a code");
    assert_eq!(body["type"].as_str(), Some(format!("urn:session-service:problem:{code}").as_str()), "{body}");
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    body
}

/// Asserts a problem with this status and code, and returns its body.
pub(crate) async fn expect_problem(resp: Response, status: StatusCode, code: &str) -> Value {
    let body = problem_body(resp).await;
    assert_eq!(
        (body["status"].as_u64(), body["code"].as_str()),
        (Some(u64::from(status.as_u16())), Some(code)),
        "{body}"
    );
    body
}

/// A timestamp member of a JSON body.
pub(crate) fn ts(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or_else(|| panic!("not a timestamp: {v}"), |t| t.with_timezone(&Utc))
}

/// The generation of a refresh token.
pub(crate) fn generation(refresh_token: &str) -> i64 {
    RefreshToken::parse(refresh_token).expect("a well-formed refresh token").generation
}

/// A token with the right session and generation but a secret we made up.
pub(crate) fn forge(refresh_token: &str, generation: i64) -> String {
    let genuine = RefreshToken::parse(refresh_token).expect("a well-formed refresh token");
    RefreshToken { generation, secret: [0x5a; 32], ..genuine }.encode()
}
