//! Malformed requests: every one answers an RFC 9457 problem with a stable code, and changes
//! nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

async fn a_malformed_id_in_the_path_answers_invalid_id(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/sessions/not-a-uuid", "/sessions/123", "/sessions/not-a-uuid/audit", "/sessions/%00/extend"] {
        let method = if path.ends_with("extend") { Method::POST } else { Method::GET };
        let resp = app.writer(method, path).send().await.unwrap();
        assert_eq!(problem(resp).await, (StatusCode::BAD_REQUEST, "invalid_id".into()), "{path}");
    }
    for method in [Method::PUT, Method::DELETE] {
        let resp = app.writer(method, "/sessions/zzz").json(&json!({})).send().await.unwrap();
        assert_eq!(problem(resp).await, (StatusCode::BAD_REQUEST, "invalid_id".into()));
    }
}

async fn invalid_field_values_answer_invalid_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases: Vec<(&str, serde_json::Value)> = vec![
        ("/user_id", json!("")),
        ("/user_id", json!("has space")),
        ("/user_id", json!("u".repeat(129))),
        ("/device/platform", json!("iOS")),
        ("/device/platform", json!("")),
        ("/device/id", json!("")),
        ("/device/name", json!("n".repeat(129))),
        ("/device/model", json!("bad\nmodel")),
        ("/ip", json!("300.1.1.1")),
        ("/ip", json!("localhost")),
        ("/user_agent", json!("a".repeat(513))),
        ("/metadata", json!([1])),
        ("/metadata", json!({ "blob": "x".repeat(4096) })),
    ];
    for (pointer, value) in cases {
        let mut body = session_body("user-1");
        *body.pointer_mut(pointer).unwrap() = value;
        let resp = app.writer(Method::POST, "/sessions").json(&body).send().await.unwrap();
        let problem = expect_problem(resp, StatusCode::BAD_REQUEST, "invalid_field").await;
        assert!(problem["detail"].is_string(), "{pointer}: {problem}");
    }
    let mut ipv6 = session_body("user-1");
    ipv6["ip"] = json!("2001:db8::1");
    ipv6["metadata"] = json!({ "blob": "x".repeat(4000) });
    app.create_session_with(ipv6).await;
    let listed = app.reader(Method::GET, "/sessions/user/user-1").send().await.unwrap();
    assert_eq!(
        expect_json(listed, StatusCode::OK).await["sessions"].as_array().unwrap().len(),
        1,
        "only the valid one"
    );
}

async fn unknown_routes_answer_404_not_found_and_wrong_methods_405(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/nope", "/sessions/a/b/c", "/session", "/v1/sessions"] {
        let resp = app.writer(Method::GET, path).send().await.unwrap();
        assert_eq!(problem(resp).await, (StatusCode::NOT_FOUND, "not_found".into()), "{path}");
    }
    for (method, path) in [
        (Method::PATCH, "/sessions/00000000-0000-0000-0000-000000000000"),
        (Method::GET, "/session/refresh"),
        (Method::POST, "/healthz"),
        (Method::DELETE, "/sessions"),
    ] {
        let resp = app.writer(method.clone(), path).send().await.unwrap();
        assert!(resp.headers().contains_key("allow"), "{method} {path}: a 405 names the allowed methods");
        assert_eq!(
            problem(resp).await,
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into()),
            "{method} {path}"
        );
    }
}

async fn problems_about_tokens_never_say_why(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let mut tampered = created.access.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    for token in [tampered.as_str(), "a.b.c", &created.access[..created.access.len() / 2]] {
        let body = expect_problem(app.me(token).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
        assert!(body.get("detail").is_none(), "{body}");
        let text = body.to_string().to_lowercase();
        for leak in ["signature", "kid", "base64", "json", "algorithm", "expired"] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
    }
}

async fn an_overlong_request_target_answers_414_problem_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let long = "x".repeat(8 * 1024);
    for path in [format!("/sessions/user/{long}"), format!("/healthz?pad={long}"), format!("/nope/{long}")] {
        let resp = app.reader(Method::GET, &path).send().await.unwrap();
        assert_eq!(problem(resp).await, (StatusCode::URI_TOO_LONG, "uri_too_long".into()), "{}", &path[..20]);
    }
    let resp = app.reader(Method::GET, &format!("/healthz?pad={}", &long[..8000])).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "under the limit");
}

async fn too_many_or_too_large_headers_answer_431_problem_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut many = app.writer(Method::POST, "/sessions").json(&session_body("user-1"));
    for i in 0..70 {
        many = many.header(format!("x-pad-{i}"), "1");
    }
    let resp = many.send().await.unwrap();
    assert_eq!(problem(resp).await, (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large".into()));
    let resp = app.anon(Method::GET, "/nope").header("x-big", "v".repeat(17 * 1024)).send().await.unwrap();
    assert_eq!(problem(resp).await, (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large".into()));
    let listed = app.reader(Method::GET, "/sessions/user/user-1").send().await.unwrap();
    assert_eq!(expect_json(listed, StatusCode::OK).await["sessions"], json!([]), "nothing was created");
    let mut some = app.anon(Method::GET, "/healthz");
    for i in 0..50 {
        some = some.header(format!("x-pad-{i}"), "v".repeat(200));
    }
    assert_eq!(some.send().await.unwrap().status(), StatusCode::OK, "under both limits");
}

both!(
    a_malformed_id_in_the_path_answers_invalid_id,
    an_overlong_request_target_answers_414_problem_json,
    too_many_or_too_large_headers_answer_431_problem_json,
    invalid_field_values_answer_invalid_field,
    unknown_routes_answer_404_not_found_and_wrong_methods_405,
    problems_about_tokens_never_say_why,
);
