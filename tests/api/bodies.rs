//! Request bodies: malformed JSON, content types, unknown fields, wrong types and size limits.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

async fn malformed_json_answers_bad_request(backend: Backend) {
    let app = spawn_app(backend).await;
    for body in ["{", "not json", "[]", "null", ""] {
        let resp = app
            .writer(Method::POST, "/sessions")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(problem(resp).await, (StatusCode::BAD_REQUEST, "bad_request".into()), "{body:?}");
    }
    let resp = app
        .anon(Method::POST, "/session/refresh")
        .header("content-type", "application/json")
        .body("{\"refresh_token\":")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(resp).await, (StatusCode::BAD_REQUEST, "bad_request".into()));
}

async fn a_body_without_a_json_content_type_answers_415(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = session_body("user-1").to_string();
    let resp = app.writer(Method::POST, "/sessions").body(body.clone()).send().await.unwrap();
    assert_eq!(problem(resp).await, (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type".into()));
    let resp =
        app.writer(Method::POST, "/sessions").header("content-type", "text/plain").body(body).send().await.unwrap();
    assert_eq!(problem(resp).await, (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type".into()));
    let created = app.create_session("user-1").await;
    let path = format!("/sessions/{}/revoke", created.id);
    let resp = app.writer(Method::POST, &path).body(r#"{"reason":"x"}"#).send().await.unwrap();
    assert_eq!(
        problem(resp).await,
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type".into()),
        "an optional body too"
    );
    assert_eq!(app.get_session(created.id).await["status"], "active");
    let resp = app
        .anon(Method::POST, "/session/refresh")
        .body(json!({ "refresh_token": created.refresh }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(problem(resp).await, (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type".into()));
}

async fn unknown_fields_and_wrong_types_answer_bad_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut unknown = session_body("user-1");
    unknown["is_admin"] = json!(true);
    let mut unknown_device_field = session_body("user-1");
    unknown_device_field["device"]["os"] = json!("ios 17");
    let mut wrong_type = session_body("user-1");
    wrong_type["user_id"] = json!(42);
    let mut missing = session_body("user-1");
    missing.as_object_mut().unwrap().remove("device");
    for body in [unknown, unknown_device_field, wrong_type, missing, json!({ "device": "ios" })] {
        let resp = app.writer(Method::POST, "/sessions").json(&body).send().await.unwrap();
        assert_eq!(problem(resp).await, (StatusCode::BAD_REQUEST, "bad_request".into()), "{body}");
    }
    for body in [json!({ "refresh_token": 1 }), json!({}), json!({ "refresh_token": "x", "device": "y" })] {
        let resp = app.anon(Method::POST, "/session/refresh").json(&body).send().await.unwrap();
        assert_eq!(problem(resp).await, (StatusCode::BAD_REQUEST, "bad_request".into()), "{body}");
    }
    let listed = app.reader(Method::GET, "/sessions/user/user-1").send().await.unwrap();
    assert_eq!(expect_json(listed, StatusCode::OK).await["sessions"], json!([]), "nothing was created");
}

async fn positional_arrays_are_refused_at_every_level(backend: Backend) {
    let app = spawn_app(backend).await;
    let device = json!({ "id": "device-1", "platform": "ios" });
    for body in [
        json!(["user-1", device]),
        json!({ "user_id": "user-1", "device": ["device-1", "ios"] }),
        json!(["user-1", ["device-1", "ios"]]),
    ] {
        let resp = app.writer(Method::POST, "/sessions").json(&body).send().await.unwrap();
        let problem = expect_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("invalid type: sequence, expected a JSON object"), "{body}: {problem}");
    }
    let created = app.create_session("user-1").await;
    for (method, path, body) in [
        (Method::PUT, format!("/sessions/{}", created.id), json!(["renamed", { "a": 1 }])),
        (Method::POST, format!("/sessions/{}/extend", created.id), json!([60])),
        (Method::POST, format!("/sessions/{}/revoke", created.id), json!(["by_test"])),
        (Method::POST, "/session/validate".into(), json!([created.refresh])),
        (Method::POST, "/session/refresh".into(), json!([created.refresh])),
    ] {
        let resp = app.writer(method, &path).json(&body).send().await.unwrap();
        expect_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    let session = app.get_session(created.id).await;
    assert_eq!(
        (session["status"].as_str(), session["device"]["name"].as_str()),
        (Some("active"), Some("Ana's iPhone"))
    );
    let listed = app.reader(Method::GET, "/sessions/user/user-1").send().await.unwrap();
    assert_eq!(
        expect_json(listed, StatusCode::OK).await["sessions"].as_array().unwrap().len(),
        1,
        "only the valid one"
    );
    app.refresh_ok(&created.refresh).await;
}

async fn problems_about_bodies_name_the_field_and_no_rust_type(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let mut wrong_type = session_body("user-1");
    wrong_type["device"]["platform"] = json!(7);
    let cases = [
        ("/sessions".to_owned(), json!([]), None),
        ("/sessions".to_owned(), json!(["user-1"]), None),
        ("/sessions".to_owned(), wrong_type, Some("device.platform: ")),
        ("/sessions".to_owned(), json!({ "user_id": "u", "device": 1 }), Some("device: ")),
        (format!("/sessions/{}/extend", created.id), json!({ "seconds": "60" }), Some("seconds: ")),
        (format!("/sessions/{}/extend", created.id), json!({ "seconds": 1.5 }), Some("seconds: ")),
        (format!("/sessions/{}", created.id), json!([null, null]), None),
        ("/session/refresh".to_owned(), json!({ "refresh_token": [] }), Some("refresh_token: ")),
    ];
    for (path, body, field) in cases {
        let method =
            if path.matches('/').count() == 2 && path.starts_with("/sessions/") { Method::PUT } else { Method::POST };
        let resp = app.writer(method, &path).json(&body).send().await.unwrap();
        let problem = expect_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
        assert_eq!(problem["title"], "malformed request", "{path} {body}: the title is the same for every such body");
        let detail = problem["detail"].as_str().unwrap();
        assert!(field.is_none_or(|f| detail.starts_with(f)), "{path} {body}: {detail}");
        let text = problem.to_string();
        for rust in ["struct ", "Request", "i64", "u32", "f64", "Failed to deserialize", "with 2 elements"] {
            assert!(!text.contains(rust), "{path} {body}: {rust} in {text}");
        }
    }
    let resp = app.reader(Method::GET, "/sessions/user/user-1?limit=x").send().await.unwrap();
    let problem = expect_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    assert_eq!(problem["title"], "malformed request", "{problem}");
    assert!(problem["detail"].as_str().is_some_and(|d| d.starts_with("query string: ")), "{problem}");
}

async fn a_body_over_the_limit_answers_413(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut body = session_body("user-1");
    body["metadata"] = json!({ "blob": "x".repeat(100 * 1024) });
    let resp = app.writer(Method::POST, "/sessions").json(&body).send().await.unwrap();
    assert_eq!(problem(resp).await, (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into()));
    let resp = app
        .anon(Method::POST, "/session/refresh")
        .json(&json!({ "refresh_token": "x".repeat(100 * 1024) }))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(resp).await, (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into()));
    let created = app.create_session("user-1").await;
    let path = format!("/sessions/{}/revoke", created.id);
    let resp = app.writer(Method::POST, &path).body(vec![b' '; 100 * 1024]).send().await.unwrap();
    assert_eq!(
        problem(resp).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into()),
        "an optional body too"
    );
}

async fn the_configured_body_limit_is_enforced(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.http.max_body_bytes = 1024).await;
    let mut body = session_body("user-1");
    body["metadata"] = json!({ "blob": "x".repeat(1500) });
    let resp = app.writer(Method::POST, "/sessions").json(&body).send().await.unwrap();
    assert_eq!(problem(resp).await, (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into()));
    app.create_session("user-1").await;
}

both!(
    malformed_json_answers_bad_request,
    a_body_without_a_json_content_type_answers_415,
    unknown_fields_and_wrong_types_answer_bad_request,
    positional_arrays_are_refused_at_every_level,
    problems_about_bodies_name_the_field_and_no_rust_type,
    a_body_over_the_limit_answers_413,
    the_configured_body_limit_is_enforced,
);
