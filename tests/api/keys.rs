//! Keys across nodes and restarts: signing-key rotation with the previous key still accepted, and
//! the embedded default that generates its keys once and keeps them.

use reqwest::{Method, StatusCode};
use session_service::config::{Config, Secret, Settings};
use session_service::tokens::SigningKeyPair;

use crate::helpers::*;

async fn kids(app: &TestApp) -> Vec<String> {
    let jwks = expect_json(app.anon(Method::GET, "/.well-known/jwks.json").send().await.unwrap(), StatusCode::OK).await;
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

fn kid_of(access_token: &str) -> String {
    jsonwebtoken::decode_header(access_token).unwrap().kid.expect("a kid")
}

async fn after_a_key_rotation_tokens_of_the_previous_key_still_verify(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let old_kid = kid_of(&created.access);
    let next = SigningKeyPair::generate();
    let next_path = app.data_dir().join("next-signing-key.pem");
    std::fs::write(&next_path, next.to_pem()).unwrap();
    let old_path = app.data_dir().join("signing-key.pem");
    let rotated = app
        .sibling(|o| {
            o.tokens.signing_key_file = Some(next_path.clone());
            o.tokens.previous_key_files = vec![old_path];
        })
        .await;
    assert_eq!(kids(&rotated).await, vec![next.kid().to_owned(), old_kid.clone()], "the new key first");
    let me = expect_json(rotated.me(&created.access).await, StatusCode::OK).await;
    assert_eq!(me["session_id"], created.id.to_string());
    let tokens = rotated.refresh_ok(&created.refresh).await;
    assert_eq!(kid_of(&tokens.access), next.kid(), "the rotated node signs with the new key");
    expect_problem(app.me(&tokens.access).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let forgetful = app.sibling(|o| o.tokens.signing_key_file = Some(next_path)).await;
    assert_eq!(kids(&forgetful).await, vec![next.kid().to_owned()]);
    expect_problem(forgetful.me(&created.access).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(forgetful.me(&tokens.access).await.status(), StatusCode::OK);
}

async fn without_configured_keys_a_generated_service_key_holds_both_scopes(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.http.service_keys = Vec::new()).await;
    let key = std::fs::read_to_string(app.data_dir().join("service-key")).expect("the generated key is saved");
    let key = key.trim();
    assert!(key.starts_with("sk_") && key.len() > 40, "{key}");
    let created =
        app.anon(Method::POST, "/sessions").bearer_auth(key).json(&session_body("user-1")).send().await.unwrap();
    let created = expect_json(created, StatusCode::CREATED).await;
    let id = created["session"]["id"].as_str().unwrap();
    let read = app.anon(Method::GET, &format!("/sessions/{id}")).bearer_auth(key).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let resp = app.writer(Method::GET, &format!("/sessions/{id}")).send().await.unwrap();
    expect_problem(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn a_restarted_embedded_node_keeps_its_service_key_signing_key_and_refresh_key(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.http.service_keys = Vec::new()).await;
    let key = std::fs::read_to_string(app.data_dir().join("service-key")).unwrap().trim().to_owned();
    let resp =
        app.anon(Method::POST, "/sessions").bearer_auth(&key).json(&session_body("user-1")).send().await.unwrap();
    let created = expect_json(resp, StatusCode::CREATED).await;
    let (access, refresh) = (created["access_token"].as_str().unwrap(), created["refresh_token"].as_str().unwrap());
    let kids_before = kids(&app).await;

    let app = app.restart(|o| o.http.service_keys = Vec::new()).await;
    let key_after = std::fs::read_to_string(app.data_dir().join("service-key")).unwrap().trim().to_owned();
    assert_eq!(key_after, key, "the service key is not regenerated");
    assert_eq!(kids(&app).await, kids_before, "the same signing key");
    let id = created["session"]["id"].as_str().unwrap();
    let read = app.anon(Method::GET, &format!("/sessions/{id}")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(app.me(access).await.status(), StatusCode::OK, "access tokens survive the restart");
    let tokens = app.refresh_ok(refresh).await;
    assert_eq!(generation(&tokens.refresh), 1, "refresh tokens issued before the restart still rotate");
    let replay = app.refresh_ok(refresh).await;
    assert_eq!(replay.refresh, tokens.refresh, "and re-derive to the same successor");
}

async fn a_peppered_node_rotates_and_a_node_with_another_pepper_refuses_without_revoking(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.tokens.refresh_pepper = Some(Secret("pepper-1".into()))).await;
    let created = app.create_session("user-1").await;
    let rotated = app.refresh_ok(&created.refresh).await;
    assert_eq!(app.refresh_ok(&created.refresh).await.refresh, rotated.refresh, "replay works with a pepper");
    let repeppered = app.sibling(|o| o.tokens.refresh_pepper = Some(Secret("pepper-2".into()))).await;
    expect_problem(repeppered.refresh(&rotated.refresh).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let unpeppered = app.sibling(|_| {}).await;
    expect_problem(unpeppered.refresh(&rotated.refresh).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(app.get_session(created.id).await["status"], "active");
    assert_eq!(generation(&app.refresh_ok(&rotated.refresh).await.refresh), 2);
}

async fn configured_key_files_that_do_not_exist_stop_the_start(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = app.data_dir().join("no-such-key");
    let tweaks: [&dyn Fn(&mut Config); 3] = [
        &|c| c.tokens.signing_key_file = Some(missing.clone()),
        &|c| c.tokens.refresh_key_file = Some(missing.clone()),
        &|c| c.tokens.previous_key_files = vec![missing.clone()],
    ];
    for tweak in tweaks {
        let mut config = Config { data_dir: app.data_dir().to_owned(), ..Config::default() };
        config.http.listen = ([127, 0, 0, 1], 0).into();
        config.database.url = Some(Secret(app.database_url().to_owned()));
        tweak(&mut config);
        let settings = Settings::resolve(config).unwrap();
        let clock = std::sync::Arc::new(session_service::clock::SystemClock);
        assert!(session_service::app::build(settings, clock).await.is_err());
    }
    assert!(!missing.exists(), "nothing was generated in place of a configured key");
}

both!(
    after_a_key_rotation_tokens_of_the_previous_key_still_verify,
    without_configured_keys_a_generated_service_key_holds_both_scopes,
    a_restarted_embedded_node_keeps_its_service_key_signing_key_and_refresh_key,
    a_peppered_node_rotates_and_a_node_with_another_pepper_refuses_without_revoking,
    configured_key_files_that_do_not_exist_stop_the_start,
);
