//! `GET /revocations`, the revocation feed: scope, cursor walk, bad input, the long-poll (early
//! answer on a revocation made on this node or another, empty answer at the end of the wait), and
//! the SDK's `Verifier` refusing a revoked session through the feed and through NATS.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use session_client::verifier::{Verifier, VerifierConfig, VerifyError};
use session_service::tokens::{AccessTokens, SigningKeyPair};
use uuid::Uuid;

use crate::helpers::*;

/// Generous bound for anything the feed promises "within about a second".
const SOON: Duration = Duration::from_secs(10);

async fn feed(app: &TestApp, query: &str) -> Value {
    let resp = app.reader(Method::GET, &format!("/revocations{query}")).send().await.expect("request");
    expect_json(resp, StatusCode::OK).await
}

/// Reads from `after` until `n` revocations have come (bounded): on Postgres a revocation
/// appears once the server's older transactions (other tests' too) have finished.
async fn settled(app: &TestApp, n: usize) -> Value {
    let deadline = Instant::now() + SOON;
    loop {
        let page = feed(app, "").await;
        if page["revocations"].as_array().unwrap().len() >= n || Instant::now() >= deadline {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["revocations"].as_array().unwrap().iter().map(|r| r["session_id"].as_str().unwrap().to_owned()).collect()
}

async fn revoke(app: &TestApp, id: Uuid) {
    let resp = app.writer(Method::POST, &format!("/sessions/{id}/revoke")).send().await.expect("request");
    expect_json(resp, StatusCode::OK).await;
}

async fn the_feed_needs_the_read_scope(backend: Backend) {
    let write_only = format!("sk_test_write_only_{}", Uuid::new_v4().simple());
    let key = write_only.clone();
    let app = spawn_app_with(backend, |c| c.http.service_keys.push(key_spec("writer", &key, "sessions:write"))).await;
    expect_problem(
        app.anon(Method::GET, "/revocations").send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let resp = app.anon(Method::GET, "/revocations").bearer_auth(&write_only).send().await.unwrap();
    expect_problem(resp, StatusCode::FORBIDDEN, "insufficient_scope").await;
    assert!(feed(&app, "").await["revocations"].as_array().unwrap().is_empty());
}

async fn the_feed_walks_revocations_page_by_page_with_when_each_stops_mattering(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut revoked = Vec::new();
    for i in 0..5 {
        let s = app.create_session(&format!("user-{i}")).await;
        revoke(&app, s.id).await;
        revoked.push(s.id.to_string());
    }
    assert_eq!(ids(&settled(&app, 5).await), revoked, "commit order");

    let (mut seen, mut query, mut pages) = (Vec::new(), "?limit=2".to_owned(), Vec::new());
    for _ in 0..10 {
        let page = feed(&app, &query).await;
        pages.push((ids(&page).len(), page["has_more"].as_bool().unwrap()));
        seen.extend(ids(&page));
        query = format!("?limit=2&after={}", page["cursor"].as_str().unwrap());
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(pages, [(2, true), (2, true), (1, false)]);
    assert_eq!(seen, revoked);
    let page = feed(&app, "").await;
    let first = &page["revocations"][0];
    assert_eq!(first["user_id"], "user-0");
    // The default longest access-token lifetime is 10 minutes.
    assert_eq!(ts(&first["not_after"]) - ts(&first["revoked_at"]), chrono::Duration::minutes(10));
}

async fn bad_cursors_and_limits_are_refused_as_problems(backend: Backend) {
    let app = spawn_app(backend).await;
    for query in ["?after=!!", "?after=eHl6", "?limit=0", "?limit=1001", "?wait=60001"] {
        let resp = app.reader(Method::GET, &format!("/revocations{query}")).send().await.unwrap();
        expect_problem(resp, StatusCode::BAD_REQUEST, "invalid_field").await;
    }
    for query in ["?wait=soon", "?colour=blue"] {
        let resp = app.reader(Method::GET, &format!("/revocations{query}")).send().await.unwrap();
        expect_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    }
}

async fn a_long_poll_answers_as_soon_as_a_session_is_revoked_and_empty_at_the_end_of_its_wait(backend: Backend) {
    let app = spawn_app(backend).await;
    let s = app.create_session("user-1").await;
    let cursor = feed(&app, "").await["cursor"].as_str().unwrap().to_owned();

    let started = Instant::now();
    let empty = feed(&app, &format!("?after={cursor}&wait=300")).await;
    assert!(started.elapsed() >= Duration::from_millis(300), "waited for the wait");
    assert_eq!((ids(&empty).len(), empty["cursor"].as_str()), (0, Some(cursor.as_str())), "same cursor");

    let waiting = {
        let (client, url, key) =
            (app.client.clone(), app.url(&format!("/revocations?after={cursor}&wait=25000")), app.reader_key.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let page: Value = client.get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap();
            (page, started.elapsed())
        })
    };
    // Give the request time to start waiting; the assertion below holds either way.
    tokio::time::sleep(Duration::from_millis(200)).await;
    revoke(&app, s.id).await;
    let (page, took) = tokio::time::timeout(Duration::from_secs(20), waiting).await.expect("answered").unwrap();
    assert_eq!(ids(&page), [s.id.to_string()]);
    assert!(took < Duration::from_secs(20), "answered before its 25 s wait ran out ({took:?})");
}

async fn a_long_poll_hears_of_a_revocation_made_on_another_node(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.sibling(|_| {}).await;
    let s = app.create_session("user-1").await;
    let cursor = feed(&app, "").await["cursor"].as_str().unwrap().to_owned();
    let waiting = {
        let (client, url, key) =
            (app.client.clone(), app.url(&format!("/revocations?after={cursor}&wait=25000")), app.reader_key.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let page: Value = client.get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap();
            (page, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    revoke(&other, s.id).await;
    let (page, took) = tokio::time::timeout(Duration::from_secs(20), waiting).await.expect("answered").unwrap();
    assert_eq!(ids(&page), [s.id.to_string()], "after {took:?}");
    assert!(took < Duration::from_secs(20), "answered before its 25 s wait ran out ({took:?})");
}

fn verifier(app: &TestApp, tweak: impl FnOnce(&mut VerifierConfig)) -> Verifier {
    let mut config = VerifierConfig::new(app.url(""), "session-service", "game-platform");
    tweak(&mut config);
    Verifier::new(config)
}

/// Polls `verify` until it refuses the token as revoked (bounded by [`SOON`]).
async fn refused_soon(v: &Verifier, token: &str) -> Duration {
    let started = Instant::now();
    loop {
        match v.verify(token).await {
            Err(VerifyError::Revoked(_)) => return started.elapsed(),
            Ok(_) if started.elapsed() < SOON => tokio::time::sleep(Duration::from_millis(10)).await,
            other => panic!("still {other:?} after {:?}", started.elapsed()),
        }
    }
}

async fn the_verifier_refuses_a_session_revoked_through_the_feed(backend: Backend) {
    let app = spawn_app(backend).await;
    let s = app.create_session("user-1").await;
    let v = verifier(&app, |_| {});
    let claims = v.verify(&s.access).await.expect("a fresh token verifies");
    assert_eq!((claims.sid, claims.sub.as_str()), (s.id, "user-1"));
    let mut following = v.follow_feed(app.reader_key.clone());
    tokio::time::timeout(SOON, following.synced()).await.expect("the feed is read");
    assert!(v.verify(&s.access).await.is_ok(), "not revoked yet");
    revoke(&app, s.id).await;
    refused_soon(&v, &s.access).await;
    assert_eq!(v.jwks_fetches(), 1);
}

async fn the_verifier_refuses_a_session_revoked_on_nats(backend: Backend) {
    let app = spawn_app(backend).await;
    let (s, stale) = (app.create_session("user-1").await, app.create_session("user-2").await);
    let v = verifier(&app, |_| {});
    let prefix = format!("{}.", session_test_support::nats::unique_prefix());
    let nats = async_nats::connect(session_test_support::nats::shared_url()).await.expect("the shared NATS");
    let _following = v.follow_nats(nats.clone(), &prefix).await.expect("subscribed");
    let envelope = |id: Uuid, time: chrono::DateTime<chrono::Utc>| {
        json!({"specversion": "1.0", "id": Uuid::now_v7(), "source": "session-service", "type": "session.revoked",
            "subject": id, "time": time, "datacontenttype": "application/json", "dataschema": "session-events/v1",
            "data": {"session_id": id, "user_id": "user-1", "device_id": "d", "platform": "ios", "reason": "logout"}})
        .to_string()
    };
    let subject = format!("{prefix}session.revoked");
    // Revoked longer ago than any access token lives: not worth keeping.
    let old = chrono::Utc::now() - chrono::Duration::minutes(11);
    nats.publish(subject.clone(), envelope(stale.id, old).into()).await.unwrap();
    nats.publish(subject.clone(), b"not an envelope".to_vec().into()).await.unwrap();
    nats.publish(subject, envelope(s.id, chrono::Utc::now()).into()).await.unwrap();
    nats.flush().await.unwrap();
    refused_soon(&v, &s.access).await;
    assert!(v.verify(&stale.access).await.is_ok(), "a revocation older than every token is dropped");
    assert_eq!(v.revoked_count(), 1);
}

async fn the_verifier_refetches_keys_for_an_unknown_kid_at_most_once_per_interval(backend: Backend) {
    let app = spawn_app(backend).await;
    let s = app.create_session("user-1").await;
    let v = verifier(&app, |c| c.jwks_min_interval = Duration::from_secs(3600));
    v.verify(&s.access).await.expect("verifies");
    assert_eq!(v.jwks_fetches(), 1);
    let record = app.state().sessions.stored(s.id).await.unwrap();
    let foreign = AccessTokens::new("session-service", "game-platform", &SigningKeyPair::generate(), &[]);
    let (token, _) = foreign.sign(&record, chrono::Utc::now(), chrono::Duration::minutes(5));
    assert!(matches!(v.verify(&token).await, Err(VerifyError::UnknownKey(_))));
    assert!(matches!(v.verify(&token).await, Err(VerifyError::UnknownKey(_))));
    assert_eq!(v.jwks_fetches(), 1, "the first fetch was just now: the rate limit holds");

    let eager = verifier(&app, |c| c.jwks_min_interval = Duration::ZERO);
    eager.verify(&s.access).await.expect("verifies");
    assert!(matches!(eager.verify(&token).await, Err(VerifyError::UnknownKey(_))));
    assert_eq!(eager.jwks_fetches(), 2, "an unknown kid fetches the keys again");
    assert!(eager.verify(&s.access).await.is_ok());
    assert_eq!(eager.jwks_fetches(), 2, "a known kid does not");

    let wrong_aud = verifier(&app, |c| c.audience = "another-game".into());
    assert!(matches!(wrong_aud.verify(&s.access).await, Err(VerifyError::WrongAudience)));
    let wrong_iss = verifier(&app, |c| c.issuer = "someone-else".into());
    assert!(matches!(wrong_iss.verify(&s.access).await, Err(VerifyError::WrongIssuer)));
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let (expired, _) = app.state().access.sign(&record, an_hour_ago, chrono::Duration::minutes(5));
    assert!(matches!(v.verify(&expired).await, Err(VerifyError::Expired)));
    let mut tampered = s.access.clone();
    tampered.truncate(tampered.len() - 4);
    tampered.push_str("AAAA");
    assert!(matches!(v.verify(&tampered).await, Err(VerifyError::BadSignature)));
    assert!(matches!(v.verify("garbage").await, Err(VerifyError::Malformed)));
}

both! {
    the_feed_needs_the_read_scope,
    the_feed_walks_revocations_page_by_page_with_when_each_stops_mattering,
    bad_cursors_and_limits_are_refused_as_problems,
    a_long_poll_answers_as_soon_as_a_session_is_revoked_and_empty_at_the_end_of_its_wait,
    a_long_poll_hears_of_a_revocation_made_on_another_node,
    the_verifier_refuses_a_session_revoked_through_the_feed,
}

sqlite_only! {
    the_verifier_refuses_a_session_revoked_on_nats,
    the_verifier_refetches_keys_for_an_unknown_kid_at_most_once_per_interval,
}
