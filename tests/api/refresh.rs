//! `POST /session/refresh`: every row of the refresh state machine (docs/tokens.md).

use chrono::Duration;
use reqwest::StatusCode;
use uuid::Uuid;

use crate::helpers::*;

async fn the_current_token_rotates_to_the_next_generation_and_a_new_pair(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    app.advance(Duration::seconds(5));
    let resp = app.refresh(&created.refresh).await;
    assert_eq!(resp.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let tokens = expect_json(resp, StatusCode::OK).await;
    let (access, refresh) = (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());
    assert_eq!(tokens["session_id"], created.id.to_string());
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(generation(refresh), 1);
    assert_ne!(refresh, created.refresh);
    assert_ne!(access, created.access);
    assert_eq!(ts(&tokens["refresh_token_expires_at"]), app.now() + Duration::days(30));
    assert_eq!(app.me(access).await.status(), StatusCode::OK);
    assert_eq!(app.me(&created.access).await.status(), StatusCode::OK, "the old access token lives until its expiry");
    let next = app.refresh_ok(refresh).await;
    assert_eq!(generation(&next.refresh), 2, "the successor rotates in turn");
    assert_eq!(app.get_session(created.id).await["status"], "active");
}

async fn a_rotation_records_the_callers_address_and_user_agent(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let body = serde_json::json!({ "refresh_token": created.refresh });
    let req = app.anon(reqwest::Method::POST, "/session/refresh").header("user-agent", "GameClient/2.4.0");
    let req = req.header("x-forwarded-for", "198.51.100.9");
    expect_json(req.json(&body).send().await.unwrap(), StatusCode::OK).await;
    let view = app.get_session(created.id).await;
    assert_eq!(view["last_ip"], "127.0.0.1", "X-Forwarded-For is ignored without a trusted proxy");
    assert_eq!(view["user_agent"], "GameClient/2.4.0");
    assert_eq!(view["ip"], "203.0.113.7", "the opening address stays");
}

async fn a_forged_secret_is_refused_and_leaves_the_session_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let current = app.refresh_ok(&created.refresh).await;
    app.advance(Duration::minutes(5));
    for generation in [0, 1] {
        let resp = app.refresh(&forge(&current.refresh, generation)).await;
        let body = expect_problem(resp, StatusCode::UNAUTHORIZED, "invalid_token").await;
        assert!(body.get("detail").is_none(), "{body}");
    }
    assert_eq!(app.get_session(created.id).await["status"], "active");
    let next = app.refresh_ok(&current.refresh).await;
    assert_eq!(generation(&next.refresh), 2);
}

async fn a_future_generation_is_refused_and_revokes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let secrets = app.refresh_secrets();
    let t0 = session_service::tokens::RefreshToken::parse(&created.refresh).unwrap();
    let genuine_future = secrets.advance(&t0, 2).encode();
    for token in [forge(&created.refresh, 1), forge(&created.refresh, 7), genuine_future] {
        expect_problem(app.refresh(&token).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    assert_eq!(app.get_session(created.id).await["status"], "active");
    let next = app.refresh_ok(&created.refresh).await;
    assert_eq!(next.refresh, secrets.successor(&t0).encode(), "successors are derived from the server key");
}

async fn malformed_tokens_answer_invalid_token_without_detail(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let huge = "x".repeat(10 * 1024);
    let no_secret = format!("rt1.{}.0.", created.id);
    let negative = format!("rt1.{}.-1.{}", created.id, created.refresh.rsplit('.').next().unwrap());
    let other_prefix = created.refresh.replacen("rt1", "rt2", 1);
    for token in
        ["garbage", "", "rt1.not-a-uuid.0.x", huge.as_str(), &no_secret, &negative, &other_prefix, &created.access]
    {
        let body = expect_problem(app.refresh(token).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
        assert!(body.get("detail").is_none(), "{body}");
    }
    let unknown = forge(&created.refresh.replacen(&created.id.to_string(), &Uuid::new_v4().to_string(), 1), 0);
    expect_problem(app.refresh(&unknown).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(app.get_session(created.id).await["status"], "active");
}

async fn a_genuine_token_of_a_revoked_session_answers_session_revoked(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let resp = app.writer(reqwest::Method::POST, &format!("/sessions/{}/revoke", created.id)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    expect_problem(app.refresh(&created.refresh).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
    assert_eq!(app.get_session(created.id).await["revoke_reason"], "revoked_by_service", "the reason is kept");
}

async fn a_genuine_token_past_the_idle_timeout_answers_session_expired(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    app.advance(Duration::days(30) - Duration::seconds(1));
    let tokens = app.refresh_ok(&created.refresh).await;
    app.advance(Duration::days(30));
    expect_problem(app.refresh(&tokens.refresh).await, StatusCode::UNAUTHORIZED, "session_expired").await;
    expect_problem(app.refresh(&created.refresh).await, StatusCode::UNAUTHORIZED, "session_expired").await;
    assert_eq!(app.get_session(created.id).await["status"], "expired");
}

async fn the_audit_trail_records_rotate_replay_forged_and_reuse(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let rotated = app.refresh_ok(&created.refresh).await;
    app.refresh_ok(&created.refresh).await;
    app.refresh(&forge(&rotated.refresh, 1)).await;
    app.advance(Duration::seconds(21));
    app.refresh(&created.refresh).await;
    let entries = app.audit(created.id).await;
    let refreshes: Vec<_> =
        entries.iter().rev().filter(|e| e["action"] == "refresh").map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(refreshes, vec!["rotate", "replay", "forged", "reuse"]);
    let reuse = entries.iter().find(|e| e["outcome"] == "reuse").unwrap();
    assert_eq!(reuse["reason"], "refresh_token_reuse");
    let revoke = entries.iter().find(|e| e["action"] == "revoke").expect("the revocation is audited");
    assert_eq!(
        (revoke["reason"].as_str(), &revoke["actor"]),
        (Some("refresh_token_reuse"), &serde_json::json!({ "kind": "system" }))
    );
}

both!(
    the_current_token_rotates_to_the_next_generation_and_a_new_pair,
    a_rotation_records_the_callers_address_and_user_agent,
    a_forged_secret_is_refused_and_leaves_the_session_alone,
    a_future_generation_is_refused_and_revokes_nothing,
    malformed_tokens_answer_invalid_token_without_detail,
    a_genuine_token_of_a_revoked_session_answers_session_revoked,
    a_genuine_token_past_the_idle_timeout_answers_session_expired,
    the_audit_trail_records_rotate_replay_forged_and_reuse,
);
