//! `GET /sessions/user/{user_id}` and the audit queries: filters, keyset pagination, validation.

use std::collections::HashSet;

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::*;

async fn list(app: &TestApp, query: &str) -> Value {
    let resp = app.reader(Method::GET, &format!("/sessions/user/user-1{query}")).send().await.unwrap();
    expect_json(resp, StatusCode::OK).await
}

fn ids(page: &Value) -> Vec<Uuid> {
    page["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().parse().unwrap()).collect()
}

async fn listing_shows_active_sessions_by_default_and_every_one_with_status_all(backend: Backend) {
    let app = spawn_app(backend).await;
    let kept = app.create_session("user-1").await;
    app.advance(Duration::seconds(1));
    let revoked = app.create_session("user-1").await;
    app.create_session("user-2").await;
    let resp = app.writer(Method::POST, &format!("/sessions/{}/revoke", revoked.id)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let active = list(&app, "").await;
    assert_eq!(ids(&active), vec![kept.id]);
    assert!(active.get("next_cursor").is_none(), "{active}");
    let all = list(&app, "?status=all").await;
    assert_eq!(ids(&all), vec![revoked.id, kept.id], "newest first");
    assert_eq!(all["sessions"][0]["status"], "revoked");
    assert_eq!(ids(&list(&app, "?status=active").await), vec![kept.id]);
    let nobody = app.reader(Method::GET, "/sessions/user/nobody").send().await.unwrap();
    assert_eq!(expect_json(nobody, StatusCode::OK).await["sessions"], serde_json::json!([]));
}

async fn paging_with_limit_and_next_cursor_returns_every_session_exactly_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut created = Vec::new();
    for i in 0..7 {
        // Some sessions share a creation time, so the cursor must break ties by id.
        if i % 3 == 0 {
            app.advance(Duration::seconds(1));
        }
        created.push(app.create_session("user-1").await.id);
    }
    let (mut seen, mut pages, mut query) = (Vec::new(), 0, "?limit=2".to_owned());
    loop {
        let page = list(&app, &query).await;
        pages += 1;
        let page_ids = ids(&page);
        assert!(page_ids.len() <= 2, "{page}");
        seen.extend(page_ids);
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 4);
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(seen.iter().collect::<HashSet<_>>(), created.iter().collect::<HashSet<_>>());
    let whole = ids(&list(&app, "?limit=100").await);
    assert_eq!(seen, whole, "pages concatenate to the unpaged order");
    let times: Vec<_> =
        list(&app, "").await["sessions"].as_array().unwrap().iter().map(|s| ts(&s["created_at"])).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
}

async fn listing_refuses_bad_limits_cursors_and_parameters(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_session("user-1").await;
    for query in ["?limit=0", "?limit=101", "?cursor=!!!", "?cursor=bm90LWEtY3Vyc29y"] {
        let resp = app.reader(Method::GET, &format!("/sessions/user/user-1{query}")).send().await.unwrap();
        expect_problem(resp, StatusCode::BAD_REQUEST, "invalid_field").await;
    }
    for query in ["?limit=ten", "?status=revoked", "?sort=asc", "?limit=-1"] {
        let resp = app.reader(Method::GET, &format!("/sessions/user/user-1{query}")).send().await.unwrap();
        expect_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    assert_eq!(ids(&list(&app, "?limit=1").await).len(), 1);
    assert_eq!(ids(&list(&app, "?limit=100").await).len(), 1);
    let long = "u".repeat(129);
    for user in ["a%20b", long.as_str()] {
        let resp = app.reader(Method::GET, &format!("/sessions/user/{user}")).send().await.unwrap();
        expect_problem(resp, StatusCode::BAD_REQUEST, "invalid_field").await;
    }
}

async fn the_audit_of_a_session_lists_its_operations_newest_first_with_actor_and_ip(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    app.advance(Duration::seconds(1));
    app.refresh_ok(&created.refresh).await;
    app.advance(Duration::seconds(1));
    app.writer(Method::POST, &format!("/sessions/{}/revoke", created.id)).send().await.unwrap();
    let entries = app.audit(created.id).await;
    let trail: Vec<_> =
        entries.iter().map(|e| (e["action"].as_str().unwrap(), e["outcome"].as_str().unwrap())).collect();
    assert_eq!(trail, vec![("revoke", "ok"), ("refresh", "rotate"), ("create", "ok")]);
    let create = &entries[2];
    assert_eq!(create["actor"], serde_json::json!({ "kind": "service", "id": "auth-service" }));
    assert_eq!((create["user_id"].as_str(), create["ip"].as_str()), (Some("user-1"), Some("203.0.113.7")));
    assert_eq!(create["session_id"], created.id.to_string());
    assert_eq!(entries[1]["ip"], "127.0.0.1", "a refresh records the caller's address");
    let times: Vec<_> = entries.iter().map(|e| ts(&e["at"])).collect();
    assert!(times.windows(2).all(|w| w[0] > w[1]), "{times:?}");
}

async fn audit_queries_page_with_before_and_cover_a_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = app.create_session("user-1").await;
    let b = app.create_session("user-1").await;
    app.create_session("user-2").await;
    let mut token = a.refresh.clone();
    for _ in 0..3 {
        app.advance(Duration::seconds(30));
        token = app.refresh_ok(&token).await.refresh;
    }
    let path = format!("/sessions/{}/audit?limit=3", a.id);
    let first = expect_json(app.reader(Method::GET, &path).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(first["entries"].as_array().unwrap().len(), 3);
    let before = first["next_before"].as_str().expect("a next page");
    let path = format!("/sessions/{}/audit?limit=3&before={before}", a.id);
    let second = expect_json(app.reader(Method::GET, &path).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(second["entries"].as_array().unwrap().len(), 1);
    assert_eq!(second["entries"][0]["action"], "create");
    let user =
        expect_json(app.reader(Method::GET, "/sessions/user/user-1/audit").send().await.unwrap(), StatusCode::OK).await;
    let sessions: HashSet<_> =
        user["entries"].as_array().unwrap().iter().map(|e| e["session_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(sessions, HashSet::from([a.id.to_string(), b.id.to_string()]));
    assert_eq!(user["entries"].as_array().unwrap().len(), 5);
    for query in ["limit=0", "limit=501"] {
        let resp = app.reader(Method::GET, &format!("/sessions/{}/audit?{query}", a.id)).send().await.unwrap();
        expect_problem(resp, StatusCode::BAD_REQUEST, "invalid_field").await;
    }
    let resp = app.reader(Method::GET, &format!("/sessions/{}/audit?before=nope", a.id)).send().await.unwrap();
    expect_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
}

async fn user_ids_with_url_reserved_characters_can_be_listed_percent_encoded(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = "team/alpha?x=1#y%20&z+w@example.com";
    let created = app.create_session(user).await;
    app.create_session("team").await;
    let encoded: String = user
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let page = expect_json(
        app.reader(Method::GET, &format!("/sessions/user/{encoded}")).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(ids(&page), vec![created.id]);
    assert_eq!(page["sessions"][0]["user_id"], user);
    let audit = app.reader(Method::GET, &format!("/sessions/user/{encoded}/audit")).send().await.unwrap();
    assert_eq!(expect_json(audit, StatusCode::OK).await["entries"].as_array().unwrap().len(), 1);
}

both!(
    listing_shows_active_sessions_by_default_and_every_one_with_status_all,
    paging_with_limit_and_next_cursor_returns_every_session_exactly_once,
    listing_refuses_bad_limits_cursors_and_parameters,
    the_audit_of_a_session_lists_its_operations_newest_first_with_actor_and_ip,
    audit_queries_page_with_before_and_cover_a_user,
    user_ids_with_url_reserved_characters_can_be_listed_percent_encoded,
);
