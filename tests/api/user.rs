//! The user API with an access token: `GET /session/me`, `DELETE /session/{id}`,
//! `DELETE /session/all`.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::*;

async fn logout(app: &TestApp, access: &str, target: &str) -> reqwest::Response {
    app.player(Method::DELETE, &format!("/session/{target}"), access).send().await.unwrap()
}

async fn status(app: &TestApp, id: Uuid) -> (String, Option<String>) {
    let view = app.get_session(id).await;
    (view["status"].as_str().unwrap().to_owned(), view["revoke_reason"].as_str().map(str::to_owned))
}

async fn me_lists_the_callers_active_sessions_with_exactly_one_current(backend: Backend) {
    let app = spawn_app(backend).await;
    let mine = app.create_session("user-1").await;
    let other_device = app.create_session("user-1").await;
    let gone = app.create_session("user-1").await;
    app.create_session("user-2").await;
    app.writer(Method::POST, &format!("/sessions/{}/revoke", gone.id)).send().await.unwrap();
    let body = expect_json(app.me(&mine.access).await, StatusCode::OK).await;
    assert_eq!(
        (body["user_id"].as_str(), body["session_id"].as_str()),
        (Some("user-1"), Some(mine.id.to_string().as_str()))
    );
    let sessions = body["sessions"].as_array().unwrap();
    let mut listed: Vec<_> = sessions.iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    listed.sort();
    let mut expected = vec![mine.id.to_string(), other_device.id.to_string()];
    expected.sort();
    assert_eq!(listed, expected);
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], mine.id.to_string());
    assert!(sessions.iter().all(|s| s["current"].is_boolean()), "every entry says whether it is current");
}

async fn an_access_token_of_a_revoked_session_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    app.writer(Method::POST, &format!("/sessions/{}/revoke", created.id)).send().await.unwrap();
    expect_problem(app.me(&created.access).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
    expect_problem(logout(&app, &created.access, "all").await, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

async fn an_expired_access_token_answers_token_expired(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    app.advance(Duration::minutes(9));
    assert_eq!(app.me(&created.access).await.status(), StatusCode::OK);
    app.advance(Duration::minutes(2));
    let body = expect_problem(app.me(&created.access).await, StatusCode::UNAUTHORIZED, "token_expired").await;
    assert!(body.get("detail").is_none(), "{body}");
    let fresh = app.refresh_ok(&created.refresh).await;
    assert_eq!(app.me(&fresh.access).await.status(), StatusCode::OK);
}

async fn an_access_token_never_outlives_its_session(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.sessions.absolute_lifetime_secs = 300).await;
    let t0 = app.now();
    let created = app.create_session("user-1").await;
    let expires = |field: &str| created.body[field].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    assert_eq!(expires("refresh_token_expires_at"), t0 + Duration::seconds(300));
    let session_end = (t0 + Duration::seconds(300)).timestamp();
    assert_eq!(expires("access_token_expires_at").timestamp(), session_end, "capped below the 10-minute TTL");
    assert!(expires("access_token_expires_at") <= t0 + Duration::seconds(300), "JWT seconds round down, never up");
    app.advance(Duration::seconds(299));
    assert_eq!(app.me(&created.access).await.status(), StatusCode::OK);
    app.advance(Duration::seconds(1));
    expect_problem(app.me(&created.access).await, StatusCode::UNAUTHORIZED, "token_expired").await;
}

async fn logging_out_one_of_my_other_sessions_revokes_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let mine = app.create_session("user-1").await;
    let other = app.create_session("user-1").await;
    let resp = logout(&app, &mine.access, &other.id.to_string()).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(status(&app, other.id).await, ("revoked".into(), Some("logout".into())));
    assert_eq!(status(&app, mine.id).await.0, "active");
    let entry = app.audit(other.id).await.into_iter().find(|e| e["action"] == "revoke").unwrap();
    assert_eq!(entry["actor"], serde_json::json!({ "kind": "user", "id": "user-1" }));
    expect_problem(app.refresh(&other.refresh).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
    let own = logout(&app, &mine.access, &mine.id.to_string()).await;
    assert_eq!(own.status(), StatusCode::NO_CONTENT, "logging out the calling session itself");
    expect_problem(app.me(&mine.access).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

async fn logging_out_another_users_session_answers_404_and_leaves_it_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let mine = app.create_session("user-1").await;
    let theirs = app.create_session("user-2").await;
    let resp = logout(&app, &mine.access, &theirs.id.to_string()).await;
    expect_problem(resp, StatusCode::NOT_FOUND, "session_not_found").await;
    assert_eq!(status(&app, theirs.id).await.0, "active");
    let resp = logout(&app, &mine.access, &Uuid::new_v4().to_string()).await;
    expect_problem(resp, StatusCode::NOT_FOUND, "session_not_found").await;
    expect_problem(logout(&app, &mine.access, "not-a-uuid").await, StatusCode::BAD_REQUEST, "invalid_id").await;
}

async fn logging_out_everywhere_revokes_all_my_sessions_and_no_one_elses(backend: Backend) {
    let app = spawn_app(backend).await;
    let mine: Vec<Created> = futures::future::join_all((0..3).map(|_| app.create_session("user-1"))).await;
    let theirs = app.create_session("user-2").await;
    let resp = logout(&app, &mine[0].access, "all").await;
    assert_eq!(expect_json(resp, StatusCode::OK).await["revoked"], 3);
    for s in &mine {
        assert_eq!(status(&app, s.id).await, ("revoked".into(), Some("logout_all".into())));
    }
    assert_eq!(status(&app, theirs.id).await.0, "active");
    assert_eq!(app.me(&theirs.access).await.status(), StatusCode::OK);
}

async fn logging_out_everywhere_except_current_keeps_the_calling_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let mine = app.create_session("user-1").await;
    let others = [app.create_session("user-1").await, app.create_session("user-1").await];
    let resp = logout(&app, &mine.access, "all?except=current").await;
    assert_eq!(expect_json(resp, StatusCode::OK).await["revoked"], 2);
    assert_eq!(status(&app, mine.id).await.0, "active");
    for s in &others {
        assert_eq!(status(&app, s.id).await.0, "revoked");
    }
    let body = expect_json(app.me(&mine.access).await, StatusCode::OK).await;
    assert_eq!(body["sessions"].as_array().unwrap().len(), 1);
    let again = logout(&app, &mine.access, "all?except=current").await;
    assert_eq!(expect_json(again, StatusCode::OK).await["revoked"], 0, "nothing left to revoke");
}

async fn logging_out_everywhere_with_an_unknown_exception_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let mine = app.create_session("user-1").await;
    let other = app.create_session("user-1").await;
    expect_problem(logout(&app, &mine.access, "all?except=bogus").await, StatusCode::BAD_REQUEST, "invalid_field")
        .await;
    expect_problem(logout(&app, &mine.access, "all?only=current").await, StatusCode::BAD_REQUEST, "bad_request").await;
    assert_eq!(status(&app, other.id).await.0, "active");
    assert_eq!(status(&app, mine.id).await.0, "active");
}

both!(
    me_lists_the_callers_active_sessions_with_exactly_one_current,
    an_access_token_of_a_revoked_session_is_refused,
    an_expired_access_token_answers_token_expired,
    an_access_token_never_outlives_its_session,
    logging_out_one_of_my_other_sessions_revokes_it,
    logging_out_another_users_session_answers_404_and_leaves_it_alone,
    logging_out_everywhere_revokes_all_my_sessions_and_no_one_elses,
    logging_out_everywhere_except_current_keeps_the_calling_session,
    logging_out_everywhere_with_an_unknown_exception_is_refused,
);
