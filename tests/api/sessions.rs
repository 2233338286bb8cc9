//! The service API's session resource: create, read, update, delete.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::*;

async fn reading_a_missing_session_answers_404_session_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.reader(Method::GET, &format!("/sessions/{}", Uuid::new_v4())).send().await.unwrap();
    expect_problem(resp, StatusCode::NOT_FOUND, "session_not_found").await;
}

async fn updating_changes_the_device_name_and_metadata_and_nothing_else(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let before = app.get_session(created.id).await;
    app.advance(Duration::minutes(1));
    let body = json!({ "device_name": "Living-room TV", "metadata": { "theme": "dark" } });
    let resp = app.writer(Method::PUT, &format!("/sessions/{}", created.id)).json(&body).send().await.unwrap();
    let after = expect_json(resp, StatusCode::OK).await;
    assert_eq!(after["device"]["name"], "Living-room TV");
    assert_eq!(after["metadata"], json!({ "theme": "dark" }));
    let mut expected = before.clone();
    expected["device"]["name"] = json!("Living-room TV");
    expected["metadata"] = json!({ "theme": "dark" });
    assert_eq!(after, expected, "only the two mutable fields changed");
    assert_eq!(app.get_session(created.id).await, after, "the change is stored");

    let only_metadata = json!({ "metadata": { "theme": "light" } });
    let resp = app.writer(Method::PUT, &format!("/sessions/{}", created.id)).json(&only_metadata).send().await.unwrap();
    let again = expect_json(resp, StatusCode::OK).await;
    assert_eq!(
        (again["device"]["name"].as_str(), &again["metadata"]),
        (Some("Living-room TV"), &json!({ "theme": "light" }))
    );
    assert!(app.audit_trail(created.id).await.contains(&("update".into(), "ok".into())));
}

async fn updating_an_immutable_field_is_refused_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let before = app.get_session(created.id).await;
    let path = format!("/sessions/{}", created.id);
    for body in [json!({ "user_id": "mallory" }), json!({ "device_name": "x", "status": "active" })] {
        let resp = app.writer(Method::PUT, &path).json(&body).send().await.unwrap();
        expect_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    assert_eq!(app.get_session(created.id).await, before);
}

async fn updating_with_invalid_values_answers_invalid_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let path = format!("/sessions/{}", created.id);
    let big = "x".repeat(4100);
    for body in [
        json!({ "metadata": [1, 2] }),
        json!({ "metadata": "text" }),
        json!({ "metadata": { "blob": big } }),
        json!({ "device_name": "bad\u{0}name" }),
        json!({ "device_name": "n".repeat(129) }),
    ] {
        let resp = app.writer(Method::PUT, &path).json(&body).send().await.unwrap();
        expect_problem(resp, StatusCode::BAD_REQUEST, "invalid_field").await;
    }
    let resp = app
        .writer(Method::PUT, &format!("/sessions/{}", Uuid::new_v4()))
        .json(&json!({ "device_name": "x" }))
        .send()
        .await
        .unwrap();
    expect_problem(resp, StatusCode::NOT_FOUND, "session_not_found").await;
}

async fn deleting_a_session_removes_it_but_keeps_its_audit_trail(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let path = format!("/sessions/{}", created.id);
    let resp = app.writer(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(resp.text().await.unwrap().is_empty());
    expect_problem(app.reader(Method::GET, &path).send().await.unwrap(), StatusCode::NOT_FOUND, "session_not_found")
        .await;
    let actions: Vec<String> = app.audit_trail(created.id).await.into_iter().map(|(action, _)| action).collect();
    assert_eq!(actions.first().map(String::as_str), Some("create"), "{actions:?}");
    assert_eq!(actions.last().map(String::as_str), Some("delete"), "{actions:?}");
    expect_problem(app.refresh(&created.refresh).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    expect_problem(app.me(&created.access).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

async fn deleting_a_missing_session_answers_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let path = format!("/sessions/{}", created.id);
    assert_eq!(app.writer(Method::DELETE, &path).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    expect_problem(app.writer(Method::DELETE, &path).send().await.unwrap(), StatusCode::NOT_FOUND, "session_not_found")
        .await;
    let never = format!("/sessions/{}", Uuid::new_v4());
    expect_problem(
        app.writer(Method::DELETE, &never).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "session_not_found",
    )
    .await;
}

both!(
    reading_a_missing_session_answers_404_session_not_found,
    updating_changes_the_device_name_and_metadata_and_nothing_else,
    updating_an_immutable_field_is_refused_and_changes_nothing,
    updating_with_invalid_values_answers_invalid_field,
    deleting_a_session_removes_it_but_keeps_its_audit_trail,
    deleting_a_missing_session_answers_404,
);
