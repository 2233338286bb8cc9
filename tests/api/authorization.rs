//! Who may call what: service keys and their scopes on the service API, access tokens on the user
//! API, and neither standing in for the other.

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::json;

use crate::helpers::*;

/// Every service-API call on one session, with a valid body where one is needed.
fn service_calls(app: &TestApp, id: &str, key: Option<&str>) -> Vec<(&'static str, RequestBuilder)> {
    let with = |method: Method, path: String| {
        let req = app.anon(method, &path);
        match key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    };
    vec![
        ("create", with(Method::POST, "/sessions".into()).json(&session_body("user-9"))),
        ("read", with(Method::GET, format!("/sessions/{id}"))),
        ("update", with(Method::PUT, format!("/sessions/{id}")).json(&json!({ "device_name": "x" }))),
        ("delete", with(Method::DELETE, format!("/sessions/{id}"))),
        ("extend", with(Method::POST, format!("/sessions/{id}/extend"))),
        ("revoke", with(Method::POST, format!("/sessions/{id}/revoke"))),
        ("audit", with(Method::GET, format!("/sessions/{id}/audit"))),
        ("list", with(Method::GET, "/sessions/user/user-1".into())),
        ("user audit", with(Method::GET, "/sessions/user/user-1/audit".into())),
    ]
}

async fn the_service_api_without_a_key_answers_401_with_a_bearer_challenge(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    for (name, req) in service_calls(&app, &created.id.to_string(), None) {
        let resp = req.send().await.unwrap();
        let challenge = resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(challenge.as_deref(), Some("Bearer"), "{name}");
        assert_eq!(problem(resp).await, (StatusCode::UNAUTHORIZED, "unauthorized".into()), "{name}");
    }
    assert_eq!(app.get_session(created.id).await["status"], "active");
}

async fn the_service_api_with_an_unknown_or_malformed_key_answers_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let path = format!("/sessions/{}", created.id);
    let near_miss = format!("{}x", app.writer_key);
    let bad = [
        format!("Bearer {near_miss}"),
        format!("Basic {}", app.writer_key),
        "Bearer".into(),
        "Bearer ".into(),
        app.writer_key.clone(),
    ];
    for header in bad {
        let resp = app.anon(Method::GET, &path).header("authorization", &header).send().await.unwrap();
        assert_eq!(problem(resp).await, (StatusCode::UNAUTHORIZED, "unauthorized".into()), "{header}");
    }
    let lower = app
        .anon(Method::GET, &path)
        .header("authorization", format!("bearer {}", app.reader_key))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), StatusCode::OK, "the scheme is case-insensitive");
}

async fn the_read_only_key_can_read_but_not_write(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    for (name, req) in service_calls(&app, &created.id.to_string(), Some(&app.reader_key)) {
        let resp = req.send().await.unwrap();
        match name {
            "read" | "audit" | "list" | "user audit" => {
                assert_eq!(resp.status(), StatusCode::OK, "{name}");
            }
            _ => {
                let body = expect_problem(resp, StatusCode::FORBIDDEN, "insufficient_scope").await;
                assert!(body["detail"].as_str().is_some_and(|d| d.contains("sessions:write")), "{name}: {body}");
            }
        }
    }
    let view = app.get_session(created.id).await;
    assert_eq!((view["status"].as_str(), view["device"]["name"].as_str()), (Some("active"), Some("Ana's iPhone")));
    let listed = app.reader(Method::GET, "/sessions/user/user-9").send().await.unwrap();
    assert_eq!(expect_json(listed, StatusCode::OK).await["sessions"], json!([]), "nothing was created");
}

async fn the_user_api_without_a_token_answers_401_invalid_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    for (method, path) in [
        (Method::GET, "/session/me".to_owned()),
        (Method::DELETE, "/session/all".into()),
        (Method::DELETE, format!("/session/{}", created.id)),
    ] {
        let resp = app.anon(method.clone(), &path).send().await.unwrap();
        assert_eq!(
            resp.headers().get("www-authenticate").map(reqwest::header::HeaderValue::as_bytes),
            Some(&b"Bearer"[..]),
            "{path}"
        );
        assert_eq!(problem(resp).await, (StatusCode::UNAUTHORIZED, "invalid_token".into()), "{method} {path}");
    }
    let garbage = app.player(Method::GET, "/session/me", "eyJhbGciOiJub25lIn0.e30.").send().await.unwrap();
    assert_eq!(problem(garbage).await, (StatusCode::UNAUTHORIZED, "invalid_token".into()));
    assert_eq!(app.get_session(created.id).await["status"], "active");
}

async fn a_service_key_is_not_an_access_token_and_an_access_token_is_not_a_service_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let resp = app.player(Method::GET, "/session/me", &app.writer_key).send().await.unwrap();
    assert_eq!(problem(resp).await, (StatusCode::UNAUTHORIZED, "invalid_token".into()));
    let resp = app.player(Method::DELETE, "/session/all", &app.writer_key).send().await.unwrap();
    assert_eq!(problem(resp).await, (StatusCode::UNAUTHORIZED, "invalid_token".into()));
    let resp = app.player(Method::GET, &format!("/sessions/{}", created.id), &created.access).send().await.unwrap();
    assert_eq!(problem(resp).await, (StatusCode::UNAUTHORIZED, "unauthorized".into()));
    let resp =
        app.player(Method::POST, &format!("/sessions/{}/revoke", created.id), &created.access).send().await.unwrap();
    assert_eq!(problem(resp).await, (StatusCode::UNAUTHORIZED, "unauthorized".into()));
    let resp = app.player(Method::GET, "/session/me", &created.refresh).send().await.unwrap();
    assert_eq!(
        problem(resp).await,
        (StatusCode::UNAUTHORIZED, "invalid_token".into()),
        "a refresh token is not an access token"
    );
    assert_eq!(app.get_session(created.id).await["status"], "active");
}

async fn an_access_token_from_another_issuer_key_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = spawn_app(backend).await;
    let foreign = other.create_session("user-1").await;
    let resp = app.me(&foreign.access).await;
    assert_eq!(problem(resp).await, (StatusCode::UNAUTHORIZED, "invalid_token".into()));
}

both!(
    the_service_api_without_a_key_answers_401_with_a_bearer_challenge,
    the_service_api_with_an_unknown_or_malformed_key_answers_401,
    the_read_only_key_can_read_but_not_write,
    the_user_api_without_a_token_answers_401_invalid_token,
    a_service_key_is_not_an_access_token_and_an_access_token_is_not_a_service_key,
    an_access_token_from_another_issuer_key_is_refused,
);
