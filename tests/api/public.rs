//! The unauthenticated endpoints: JWKS, health, readiness and the OpenAPI document.

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.anon(Method::GET, path).send().await.unwrap()
}

async fn the_jwks_lists_one_ed25519_signing_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = get(&app, "/.well-known/jwks.json").await;
    let cache = resp.headers().get("cache-control").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(cache.as_deref(), Some("public, max-age=300"));
    let jwks = expect_json(resp, StatusCode::OK).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    let key = &keys[0];
    assert_eq!((key["kty"].as_str(), key["crv"].as_str()), (Some("OKP"), Some("Ed25519")));
    assert_eq!((key["alg"].as_str(), key["use"].as_str()), (Some("EdDSA"), Some("sig")));
    assert_eq!(key["kid"].as_str().map(str::len), Some(43), "an RFC 7638 SHA-256 thumbprint");
    assert_eq!(key["x"].as_str().map(str::len), Some(43), "a 32-byte public key");
    assert!(key.get("d").is_none(), "never the private key: {key}");
    assert_eq!(key["kid"].as_str(), Some(app.state().access.current_kid()));
}

async fn healthz_and_readyz_answer_ok_and_readyz_names_the_store(backend: Backend) {
    let app = spawn_app(backend).await;
    let health = expect_json(get(&app, "/healthz").await, StatusCode::OK).await;
    assert_eq!(health["status"], "ok");
    let ready = expect_json(get(&app, "/readyz").await, StatusCode::OK).await;
    assert_eq!((ready["status"].as_str(), ready["store"].as_str()), (Some("ready"), Some(backend.name())));
}

const ROUTES: [(&str, &str); 19] = [
    ("/sessions", "post"),
    ("/sessions/{id}", "get"),
    ("/sessions/{id}", "put"),
    ("/sessions/{id}", "delete"),
    ("/sessions/{id}/extend", "post"),
    ("/sessions/{id}/revoke", "post"),
    ("/sessions/{id}/audit", "get"),
    ("/sessions/user/{user_id}", "get"),
    ("/sessions/user/{user_id}/audit", "get"),
    ("/revocations", "get"),
    ("/session/refresh", "post"),
    ("/session/validate", "post"),
    ("/session/me", "get"),
    ("/session/{id}", "delete"),
    ("/session/all", "delete"),
    ("/.well-known/jwks.json", "get"),
    ("/readyz", "get"),
    ("/cluster/stats", "get"),
    ("/metrics", "get"),
];

async fn the_openapi_document_lists_every_route_and_matches_the_committed_copy(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = expect_json(get(&app, "/openapi.json").await, StatusCode::OK).await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    for (path, method) in ROUTES.iter().chain(&[("/healthz", "get"), ("/openapi.json", "get")]) {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is missing from the document");
    }
    let documented: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, ROUTES.len() + 2, "no undocumented extras, no missing routes");
    let schemes = &doc["components"]["securitySchemes"];
    assert!(schemes["service_key"].is_object() && schemes["access_token"].is_object(), "{schemes}");

    let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let rendered = format!("{}\n", serde_json::to_string_pretty(&doc).unwrap());
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(committed.parent().unwrap()).unwrap();
        std::fs::write(&committed, &rendered).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&committed).unwrap_or_else(|e| {
        panic!("{}: {e}; run `UPDATE_OPENAPI=1 cargo test --test api openapi`", committed.display())
    });
    assert!(on_disk == rendered, "docs/openapi.json is stale; run `UPDATE_OPENAPI=1 cargo test --test api openapi`");
    let parsed: Value = serde_json::from_str(&on_disk).unwrap();
    assert_eq!(parsed, doc);
}

both!(
    the_jwks_lists_one_ed25519_signing_key,
    healthz_and_readyz_answer_ok_and_readyz_names_the_store,
    the_openapi_document_lists_every_route_and_matches_the_committed_copy,
);
