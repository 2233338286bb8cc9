//! Opening a session: `POST /sessions` and the token pair it answers.

use chrono::{DateTime, Duration};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::helpers::*;

fn collect_keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.clone());
            collect_keys(v, out);
        }),
        Value::Array(items) => items.iter().for_each(|v| collect_keys(v, out)),
        _ => {}
    }
}

async fn creating_a_session_answers_201_with_every_field_and_the_default_expiries(backend: Backend) {
    let app = spawn_app(backend).await;
    let now = app.now();
    let created = app.create_session("user-1").await;
    let (body, s) = (&created.body, &created.body["session"]);
    assert_eq!(s["user_id"], "user-1");
    assert_eq!(s["status"], "active");
    assert_eq!(s["device"], session_body("user-1")["device"]);
    assert_eq!((s["ip"].as_str(), s["last_ip"].as_str()), (Some("203.0.113.7"), Some("203.0.113.7")));
    assert_eq!(s["user_agent"], "GameClient/2.3.1");
    assert_eq!(s["metadata"], json!({ "login": "password" }));
    assert_eq!((ts(&s["created_at"]), ts(&s["last_used_at"])), (now, now));
    assert_eq!(ts(&s["expires_at"]), now + Duration::days(30));
    assert_eq!(ts(&s["absolute_expires_at"]), now + Duration::days(180));
    for absent in ["revoked_at", "revoke_reason", "last_seen_at", "current"] {
        assert!(s.get(absent).is_none(), "{absent} in {s}");
    }
    assert_eq!(body["token_type"], "Bearer");
    let access_exp = DateTime::from_timestamp((now + Duration::minutes(10)).timestamp(), 0).unwrap();
    assert_eq!(ts(&body["access_token_expires_at"]), access_exp);
    assert_eq!(ts(&body["refresh_token_expires_at"]), now + Duration::days(30));
    assert_eq!(app.get_session(created.id).await, *s, "GET answers what POST returned");
}

async fn the_access_token_verifies_against_the_jwks_with_every_claim(backend: Backend) {
    let app = spawn_app(backend).await;
    let now = app.now();
    let created = app.create_session("user-1").await;
    let jwks = expect_json(app.anon(Method::GET, "/.well-known/jwks.json").send().await.unwrap(), StatusCode::OK).await;
    let jwk = &jwks["keys"][0];
    let header = jsonwebtoken::decode_header(&created.access).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), jwk["kid"].as_str());
    let key = DecodingKey::from_ed_components(jwk["x"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["session-service"]);
    validation.set_audience(&["game-platform"]);
    validation.set_required_spec_claims(&["iss", "aud", "sub", "exp", "nbf"]);
    validation.validate_nbf = true;
    let claims = jsonwebtoken::decode::<Value>(&created.access, &key, &validation).expect("verifies").claims;
    assert_eq!((claims["iss"].as_str(), claims["aud"].as_str()), (Some("session-service"), Some("game-platform")));
    assert_eq!(claims["sub"], "user-1");
    assert_eq!(claims["sid"], created.id.to_string());
    assert_eq!((claims["did"].as_str(), claims["plat"].as_str()), (Some("device-1"), Some("ios")));
    assert!(claims["jti"].as_str().and_then(|j| Uuid::parse_str(j).ok()).is_some(), "{claims}");
    assert_eq!(claims["iat"].as_i64(), Some(now.timestamp()));
    assert_eq!(claims["nbf"].as_i64(), Some(now.timestamp()));
    assert_eq!(claims["exp"].as_i64(), Some((now + Duration::minutes(10)).timestamp()));
    let other = app.create_session("user-1").await;
    let other_claims = jsonwebtoken::decode::<Value>(&other.access, &key, &validation).unwrap().claims;
    assert_ne!(other_claims["jti"], claims["jti"], "every token has its own jti");
}

async fn the_refresh_token_is_rt1_session_generation_zero_and_a_256_bit_secret(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let parts: Vec<&str> = created.refresh.split('.').collect();
    assert_eq!(parts.len(), 4, "{}", created.refresh);
    assert_eq!((parts[0], parts[1], parts[2]), ("rt1", created.id.to_string().as_str(), "0"));
    assert_eq!(parts[3].len(), 43);
    assert!(parts[3].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{}", parts[3]);
    let second = app.create_session("user-1").await;
    assert_ne!(second.refresh.split('.').nth(3), Some(parts[3]), "secrets are random");
}

async fn every_response_carrying_tokens_forbids_caching(backend: Backend) {
    let app = spawn_app(backend).await;
    let no_store =
        |resp: &reqwest::Response| resp.headers().get("cache-control").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let created = app.writer(Method::POST, "/sessions").json(&session_body("user-1")).send().await.unwrap();
    let cache_create = no_store(&created);
    let created = expect_json(created, StatusCode::CREATED).await;
    let refreshed = app.refresh(created["refresh_token"].as_str().unwrap()).await;
    assert_eq!(no_store(&refreshed).as_deref(), Some("no-store"), "refresh");
    let replayed = app.refresh(created["refresh_token"].as_str().unwrap()).await;
    assert_eq!(no_store(&replayed).as_deref(), Some("no-store"), "replay");
    assert_eq!(cache_create.as_deref(), Some("no-store"), "POST /sessions answers a token pair too");
}

async fn no_token_material_ever_appears_in_a_session_view(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let view = app.get_session(created.id).await;
    let secret = created.refresh.rsplit('.').next().unwrap();
    let text = view.to_string();
    assert!(!text.contains(secret) && !text.contains(&created.access), "{text}");
    let mut keys = Vec::new();
    collect_keys(&view, &mut keys);
    for key in keys {
        for banned in ["hash", "token", "secret", "generation", "pepper"] {
            assert!(!key.contains(banned), "{key} in {view}");
        }
    }
}

async fn the_database_keeps_only_hashes_of_refresh_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let rotated = app.refresh_ok(&created.refresh).await;
    let rows = [app.stored_rows("sessions").await, app.stored_rows("audit_log").await, app.stored_rows("outbox").await]
        .join("\n");
    for token in [&created.refresh, &rotated.refresh] {
        let secret = session_service::tokens::RefreshToken::parse(token).unwrap().secret;
        for leak in [token.as_str(), token.rsplit('.').next().unwrap(), &hex::encode(secret)] {
            assert!(!rows.contains(leak), "{leak} is stored");
        }
        assert!(rows.contains(&hex::encode(Sha256::digest(secret))), "the SHA-256 of the secret is what is kept");
    }
    for access in [&created.access, &rotated.access] {
        assert!(!rows.contains(access.as_str()), "an access token is stored");
    }
}

both!(
    creating_a_session_answers_201_with_every_field_and_the_default_expiries,
    the_access_token_verifies_against_the_jwks_with_every_claim,
    the_refresh_token_is_rt1_session_generation_zero_and_a_256_bit_secret,
    every_response_carrying_tokens_forbids_caching,
    no_token_material_ever_appears_in_a_session_view,
    the_database_keeps_only_hashes_of_refresh_tokens,
);
