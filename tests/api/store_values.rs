//! Values one store would refuse or change and the other keep as sent: NUL in text and JSON,
//! signed zeros, extreme numbers (Postgres writes `1e-75` back as 76 decimals, which serde_json
//! parses exactly only with its `float_roundtrip` feature), duplicate keys, key order, deep nesting, lone surrogates and
//! times outside a store's range. Each answers the same on SQLite and Postgres.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

/// Asserts a `400 invalid_field` whose detail names `field`.
async fn refused(resp: reqwest::Response, field: &str, what: &str) {
    let problem = expect_problem(resp, StatusCode::BAD_REQUEST, "invalid_field").await;
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with(&format!("{field}:")), "{what}: the detail names {field}: {problem}");
}

async fn nul_in_metadata_keys_or_strings_answers_invalid_field_on_create_and_update(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_session("user-1").await;
    let path = format!("/sessions/{}", created.id);
    let cases = [
        json!({ "a": "x\u{0}y" }),
        json!({ "a\u{0}": 1 }),
        json!({ "a": ["ok", { "deep\u{0}": true }] }),
        json!({ "a": { "b": ["\u{0}"] } }),
    ];
    for metadata in cases {
        let mut body = session_body("user-1");
        body["metadata"] = metadata.clone();
        let resp = app.writer(Method::POST, "/sessions").json(&body).send().await.unwrap();
        refused(resp, "metadata", &format!("create {metadata}")).await;
        let resp = app.writer(Method::PUT, &path).json(&json!({ "metadata": metadata })).send().await.unwrap();
        refused(resp, "metadata", &format!("update {metadata}")).await;
    }
    let listed = app.reader(Method::GET, "/sessions/user/user-1").send().await.unwrap();
    assert_eq!(expect_json(listed, StatusCode::OK).await["sessions"].as_array().unwrap().len(), 1, "none created");
    assert_eq!(app.get_session(created.id).await["metadata"], json!({ "login": "password" }), "none stored");
}

async fn nul_in_any_text_field_answers_invalid_field(backend: Backend) {
    let app = spawn_app(backend).await;
    for (pointer, field) in [
        ("/user_id", "user_id"),
        ("/device/id", "device.id"),
        ("/device/platform", "device.platform"),
        ("/device/name", "device.name"),
        ("/device/model", "device.model"),
        ("/device/app_version", "device.app_version"),
        ("/device/fingerprint", "device.fingerprint"),
        ("/ip", "ip"),
        ("/user_agent", "user_agent"),
    ] {
        let mut body = session_body("user-1");
        *body.pointer_mut(pointer).unwrap() = json!("a\u{0}b");
        refused(app.writer(Method::POST, "/sessions").json(&body).send().await.unwrap(), field, pointer).await;
    }
    let created = app.create_session("user-1").await;
    let update = json!({ "device_name": "a\u{0}b" });
    let resp = app.writer(Method::PUT, &format!("/sessions/{}", created.id)).json(&update).send().await.unwrap();
    refused(resp, "device_name", "update").await;
    let revoke = json!({ "reason": "a\u{0}b" });
    let resp =
        app.writer(Method::POST, &format!("/sessions/{}/revoke", created.id)).json(&revoke).send().await.unwrap();
    refused(resp, "reason", "revoke").await;
    let resp = app.reader(Method::GET, "/sessions/user/a%00b").send().await.unwrap();
    refused(resp, "user_id", "a listed user").await;
    let resp = app.reader(Method::GET, "/sessions/user/a%00b/audit").send().await.unwrap();
    refused(resp, "user_id", "an audited user").await;
    assert_eq!(app.get_session(created.id).await["status"], "active");
}

/// Sent as raw JSON text (duplicate keys and signed zeros cannot be built as a `Value`).
const METADATA: &str = r#"{
    "zero": -0.0, "int_zero": -0, "zeros": [-0.0, {"z": -0.0}],
    "big": 1e300, "tiny": 5e-324, "e_75": 1.0715660391465826e-75, "e179": -1.81996730402717e179, "e_179": -1.81996730402717e-179, "u64": 18446744073709551615, "i64": -9223372036854775808,
    "over_u64": 18446744073709551616, "one": 1.0, "hundred": 1E2,
    "dup": 1, "dup": 2,
    "b": 1, "a": 2, "aa": 3,
    "text": "😀 \uffff \t é",
    "deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{"end": null}]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
}"#;

fn expected_metadata() -> Value {
    let mut deep = json!([{ "end": null }]);
    for _ in 1..64 {
        deep = json!([deep]);
    }
    json!({
        "zero": 0.0, "int_zero": 0.0, "zeros": [0.0, { "z": 0.0 }],
        "big": 1e300, "tiny": 5e-324, "e_75": 1.0715660391465826e-75, "e179": -1.81996730402717e179, "e_179": -1.81996730402717e-179, "u64": u64::MAX, "i64": i64::MIN,
        "over_u64": 18446744073709551616.0, "one": 1.0, "hundred": 100.0,
        "dup": 2,
        "a": 2, "aa": 3, "b": 1,
        "text": "😀 \u{ffff} \t é",
        "deep": deep,
    })
}

async fn metadata_reads_back_the_same_on_both_stores(backend: Backend) {
    let app = spawn_app(backend).await;
    let metadata: Value = serde_json::from_str(METADATA).unwrap();
    assert_eq!(metadata["zero"].to_string(), "-0.0", "the sign survives parsing: the stores would see it");
    let mut body = session_body("user-1").to_string();
    body = body.replace(r#"{"login":"password"}"#, METADATA);
    let resp = app.writer(Method::POST, "/sessions").header("content-type", "application/json").body(body);
    let created = expect_json(resp.send().await.unwrap(), StatusCode::CREATED).await;
    let id: uuid::Uuid = created["session"]["id"].as_str().unwrap().parse().unwrap();
    let expected = expected_metadata();
    assert_eq!(created["session"]["metadata"].to_string(), expected.to_string(), "as created");
    assert_eq!(app.get_session(id).await["metadata"].to_string(), expected.to_string(), "as stored");

    let update = format!(r#"{{"metadata": {METADATA}}}"#);
    let resp = app.writer(Method::PUT, &format!("/sessions/{id}")).header("content-type", "application/json");
    let updated = expect_json(resp.body(update).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(updated["metadata"].to_string(), expected.to_string(), "as updated");
    assert_eq!(app.get_session(id).await["metadata"].to_string(), expected.to_string(), "as stored again");
}

async fn lone_surrogates_and_too_deep_documents_answer_bad_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let too_deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    for metadata in
        [r#"{"a": "\ud800"}"#, r#"{"a": "\udc00x"}"#, r#"{"\ud83d": 1}"#, &format!(r#"{{"a": {too_deep}}}"#)]
    {
        let body = session_body("user-1").to_string().replace(r#"{"login":"password"}"#, metadata);
        let resp = app.writer(Method::POST, "/sessions").header("content-type", "application/json").body(body);
        let problem = expect_problem(resp.send().await.unwrap(), StatusCode::BAD_REQUEST, "bad_request").await;
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("line 1")), "{problem}");
    }
    let listed = app.reader(Method::GET, "/sessions/user/user-1").send().await.unwrap();
    assert_eq!(expect_json(listed, StatusCode::OK).await["sessions"], json!([]));
}

async fn a_cursor_with_a_time_outside_the_stores_range_answers_invalid_field(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_session("user-1").await;
    let id = uuid::Uuid::nil();
    for micros in [-100_000i64 * 31_556_952_000_000, -8_000 * 31_556_952_000_000, 250_000 * 31_556_952_000_000] {
        let cursor = URL_SAFE_NO_PAD.encode(format!("{micros}.{id}"));
        let resp = app.reader(Method::GET, &format!("/sessions/user/user-1?cursor={cursor}")).send().await.unwrap();
        refused(resp, "cursor", &format!("{micros} µs")).await;
    }
}

both!(
    nul_in_metadata_keys_or_strings_answers_invalid_field_on_create_and_update,
    nul_in_any_text_field_answers_invalid_field,
    metadata_reads_back_the_same_on_both_stores,
    lone_surrogates_and_too_deep_documents_answer_bad_request,
    a_cursor_with_a_time_outside_the_stores_range_answers_invalid_field,
);
