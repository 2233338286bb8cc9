//! Concurrent refreshes with one token converge on one successor: never two live lineages.

use std::collections::HashSet;

use reqwest::StatusCode;

use crate::helpers::*;

const CONCURRENT: usize = 50;

async fn fifty_concurrent_refreshes_with_one_token_all_get_the_same_successor(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let answers = futures::future::join_all((0..CONCURRENT).map(|_| app.refresh(&created.refresh))).await;
    let mut refresh_tokens = HashSet::new();
    let mut access_tokens = HashSet::new();
    for resp in answers {
        let body = expect_json(resp, StatusCode::OK).await;
        refresh_tokens.insert(body["refresh_token"].as_str().unwrap().to_owned());
        access_tokens.insert(body["access_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(refresh_tokens.len(), 1, "one successor: {refresh_tokens:?}");
    assert_eq!(access_tokens.len(), CONCURRENT, "each answer has its own access token");
    let successor = refresh_tokens.into_iter().next().unwrap();
    assert_eq!(generation(&successor), 1, "the generation advanced by exactly one");
    assert_eq!(app.get_session(created.id).await["status"], "active");
    let next = app.refresh_ok(&successor).await;
    assert_eq!(generation(&next.refresh), 2);
    let trail = app.audit_trail(created.id).await;
    let rotations = trail.iter().filter(|(action, outcome)| action == "refresh" && outcome == "rotate").count();
    let replays = trail.iter().filter(|(action, outcome)| action == "refresh" && outcome == "replay").count();
    assert_eq!((rotations, replays), (2, CONCURRENT - 1), "{trail:?}");
}

async fn concurrent_refreshes_with_the_previous_token_after_the_window_revoke_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    app.refresh_ok(&created.refresh).await;
    app.advance(chrono::Duration::seconds(20));
    let answers = futures::future::join_all((0..10).map(|_| app.refresh(&created.refresh))).await;
    for resp in answers {
        expect_problem(resp, StatusCode::UNAUTHORIZED, "session_revoked").await;
    }
    let view = app.get_session(created.id).await;
    assert_eq!(view["revoke_reason"], "refresh_token_reuse");
    let revokes = app.audit_trail(created.id).await.iter().filter(|(action, _)| action == "revoke").count();
    assert_eq!(revokes, 1, "the session is revoked once");
}

both!(
    fifty_concurrent_refreshes_with_one_token_all_get_the_same_successor,
    concurrent_refreshes_with_the_previous_token_after_the_window_revoke_once,
);
