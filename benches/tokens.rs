//! Token machinery on the request hot paths (docs/tokens.md, docs/performance.md). Every REST call and WebSocket
//! authentication verifies an access token; every create and refresh signs one and derives, hashes
//! and encodes a refresh token. Keys, the session record and the tokens are built once, outside
//! the measured loops.
//!
//! - `access/sign`: `AccessTokens::sign`, one EdDSA (Ed25519) JWT for a session: claims, JSON,
//!   base64url and the signature.
//! - `access/verify`: `AccessTokens::verify` of a valid token: header decode, `kid` lookup,
//!   signature check, issuer/audience/`nbf`/`exp` checks.
//! - `refresh/successor`: `RefreshSecrets::successor`, the HMAC-SHA256 derivation of the next
//!   generation's secret (a rotation, and each step of tracing an old token back).
//! - `refresh/hash/sha256` and `refresh/hash/hmac_pepper`: `RefreshSecrets::hash`, the stored form
//!   of a secret without and with a pepper.
//! - `refresh/parse` and `refresh/encode`: the `rt1.<session>.<generation>.<secret>` wire form
//!   read and written.

use std::hint::black_box;

use chrono::{Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use uuid::Uuid;

use session_service::session::{Device, SessionRecord, SessionStatus};
use session_service::tokens::{AccessTokens, RefreshSecrets, RefreshToken, SigningKeyPair};

/// A realistic active session: full device, IPs, user agent, some metadata.
fn session() -> SessionRecord {
    let now = Utc::now();
    SessionRecord {
        id: Uuid::now_v7(),
        user_id: "user-8d1f6c2a".into(),
        status: SessionStatus::Active,
        device: Device {
            id: "install-5b0e9a7c-3f".into(),
            platform: "android".into(),
            name: Some("Pixel 8".into()),
            model: Some("GKWS6".into()),
            app_version: Some("3.4.1".into()),
            fingerprint: None,
        },
        first_ip: Some("203.0.113.7".into()),
        last_ip: Some("203.0.113.7".into()),
        user_agent: Some("Game/3.4.1 Android/14".into()),
        metadata: json!({ "login_method": "password" }),
        created_at: now,
        last_used_at: now,
        expires_at: now + Duration::days(30),
        absolute_expires_at: now + Duration::days(180),
        revoked_at: None,
        revoke_reason: None,
        last_seen_at: None,
        refresh_generation: 0,
        refresh_hash: vec![0; 32],
        prev_refresh_hash: None,
        rotated_at: None,
    }
}

fn access(c: &mut Criterion) {
    let key = SigningKeyPair::generate();
    let tokens = AccessTokens::new("https://sessions.example", "game-platform", &key, &[]);
    let session = session();
    let now = Utc::now();
    let ttl = Duration::minutes(10);
    let (jwt, _) = tokens.sign(&session, now, ttl);
    assert!(tokens.verify(&jwt, now).is_ok(), "the bench token must verify");

    let mut group = c.benchmark_group("access");
    group.bench_function("sign", |b| b.iter(|| tokens.sign(black_box(&session), now, ttl)));
    group.bench_function("verify", |b| b.iter(|| tokens.verify(black_box(&jwt), now)));
    group.finish();
}

fn refresh(c: &mut Criterion) {
    let plain = RefreshSecrets::new([7; 32], None);
    let peppered = RefreshSecrets::new([7; 32], Some(b"bench-pepper-0123456789abcdef".to_vec()));
    let token = plain.successor(&plain.issue_initial(Uuid::now_v7()));
    let wire = token.encode();
    assert_eq!(RefreshToken::parse(&wire).as_ref(), Some(&token), "the bench token must parse");

    let mut group = c.benchmark_group("refresh");
    group.bench_function("successor", |b| b.iter(|| plain.successor(black_box(&token))));
    group.bench_function("hash/sha256", |b| b.iter(|| plain.hash(black_box(&token))));
    group.bench_function("hash/hmac_pepper", |b| b.iter(|| peppered.hash(black_box(&token))));
    group.bench_function("parse", |b| b.iter(|| RefreshToken::parse(black_box(&wire))));
    group.bench_function("encode", |b| b.iter(|| black_box(&token).encode()));
    group.finish();
}

criterion_group!(benches, access, refresh);
criterion_main!(benches);
