//! Every state change leaves its event in the transactional outbox (docs/events.md); operations
//! that change nothing leave none.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

fn subjects(outbox: &[(String, Value)]) -> Vec<&str> {
    outbox.iter().map(|(subject, _)| subject.as_str()).collect()
}

async fn each_change_writes_one_event_and_refusals_write_none(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let path = format!("/sessions/{}", created.id);
    let update = app.writer(Method::PUT, &path).json(&json!({ "device_name": "TV" })).send().await.unwrap();
    assert_eq!(update.status(), StatusCode::OK);
    let extend = app.writer(Method::POST, &format!("{path}/extend")).send().await.unwrap();
    assert_eq!(extend.status(), StatusCode::OK);
    let rotated = app.refresh_ok(&created.refresh).await;
    app.refresh_ok(&created.refresh).await;
    app.refresh(&forge(&rotated.refresh, 1)).await;
    app.validate(&rotated.refresh).await;
    let revoke =
        app.writer(Method::POST, &format!("{path}/revoke")).json(&json!({ "reason": "fraud" })).send().await.unwrap();
    assert_eq!(revoke.status(), StatusCode::OK);
    app.writer(Method::POST, &format!("{path}/revoke")).send().await.unwrap();
    let outbox = app.outbox().await;
    assert_eq!(
        subjects(&outbox),
        vec!["session.created", "session.updated", "session.extended", "session.refreshed", "session.revoked"]
    );
    for (subject, payload) in &outbox {
        assert_eq!((payload["type"].as_str(), payload["specversion"].as_str()), (Some(subject.as_str()), Some("1.0")));
        assert_eq!(payload["data"]["session_id"], created.id.to_string(), "{payload}");
        assert_eq!(payload["data"]["user_id"], "user-1", "{payload}");
    }
    assert_eq!(outbox[3].1["data"]["generation"], 1);
    assert_eq!(outbox[4].1["data"]["reason"], "fraud");
}

async fn a_reuse_writes_revoked_and_suspicious_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    app.refresh_ok(&created.refresh).await;
    app.advance(Duration::seconds(20));
    app.refresh(&created.refresh).await;
    app.refresh(&created.refresh).await;
    let outbox = app.outbox().await;
    let tail: Vec<_> = subjects(&outbox).into_iter().skip(2).collect();
    assert_eq!(tail.len(), 2, "{outbox:?}");
    assert!(tail.contains(&"session.revoked") && tail.contains(&"session.suspicious"), "{tail:?}");
    let revoked = outbox.iter().find(|(s, _)| s == "session.revoked").unwrap();
    assert_eq!(revoked.1["data"]["reason"], "refresh_token_reuse");
}

async fn the_sweep_and_the_cap_write_expired_and_revoked_events(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.sessions.max_sessions_per_user = 1).await;
    let first = app.create_session("user-1").await;
    app.create_session("user-1").await;
    let outbox = app.outbox().await;
    assert_eq!(subjects(&outbox), vec!["session.created", "session.created", "session.revoked"]);
    assert_eq!(
        (outbox[2].1["data"]["session_id"].as_str(), outbox[2].1["data"]["reason"].as_str()),
        (Some(first.id.to_string().as_str()), Some("session_limit"))
    );
    app.advance(Duration::days(30));
    assert_eq!(app.state().sessions.sweep_expired().await.unwrap(), 1);
    assert_eq!(subjects(&app.outbox().await).last(), Some(&"session.expired"));
}

both!(
    each_change_writes_one_event_and_refusals_write_none,
    a_reuse_writes_revoked_and_suspicious_events,
    the_sweep_and_the_cap_write_expired_and_revoked_events,
);
