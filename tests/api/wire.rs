//! The REST contract held between the server's bodies (`http::dto` and friends, which carry the
//! OpenAPI schema) and the SDK's types (`session_client::proto`, which clients decode with).
//!
//! Each response type is built on the server side with every optional field set, serialised,
//! read as the SDK's type and written back: the JSON must come back unchanged (so a field the
//! server adds or renames, which the lenient SDK would drop, fails), and what the SDK read must
//! equal an SDK value built field by field from the same data (so a field the SDK adds, which the
//! server never sends, fails; the struct literal makes every new field a compile error here).
//! Requests go the other way: the SDK's body must read as the server's strict request type.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};
use session_client::proto as sdk;
use session_service::http::dto as server;
use session_service::session::{Device, SessionStatus};
use uuid::Uuid;

mod service_api;
mod user_api;

/// `server` as JSON, read as the SDK's `T`; asserts the SDK writes the same JSON back.
pub(crate) fn read_as<T: DeserializeOwned + Serialize>(server: &impl Serialize) -> T {
    let sent = serde_json::to_value(server).expect("the server's body serializes");
    let read: T = serde_json::from_value(sent.clone())
        .unwrap_or_else(|e| panic!("the SDK cannot read {}: {e}\n{sent:#}", std::any::type_name::<T>()));
    let again = serde_json::to_value(&read).expect("the SDK's value serializes");
    assert_eq!(again, sent, "{} lost or changed a field", std::any::type_name::<T>());
    read
}

pub(crate) fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_b5a4_7c1e_7d2a_9f00_0000_0000_0000 + n)
}

pub(crate) fn at(hour: u32) -> DateTime<Utc> {
    format!("2026-11-23T{hour:02}:15:42.123456Z").parse().expect("a time")
}

pub(crate) fn metadata() -> Map<String, Value> {
    json!({ "login_method": "password", "region": "eu", "tries": [1, 2] }).as_object().cloned().expect("an object")
}

/// A session view with every optional field set.
pub(crate) fn server_view(n: u128, current: Option<bool>) -> server::SessionView {
    server::SessionView {
        id: id(n),
        user_id: "user-42".into(),
        status: SessionStatus::Revoked,
        device: Device {
            id: "install-8f2c".into(),
            platform: "ios".into(),
            name: Some("Sam's phone".into()),
            model: Some("iPhone15,2".into()),
            app_version: Some("3.4.1".into()),
            fingerprint: Some("fp-77".into()),
        },
        ip: Some("203.0.113.7".into()),
        last_ip: Some("198.51.100.23".into()),
        user_agent: Some("Game/3.4.1 iOS/17.2".into()),
        metadata: Value::Object(metadata()),
        created_at: at(1),
        last_used_at: at(2),
        expires_at: at(5),
        absolute_expires_at: at(6),
        revoked_at: Some(at(3)),
        revoke_reason: Some("logout".into()),
        last_seen_at: Some(at(4)),
        online: true,
        current,
    }
}

/// [`server_view`] as the SDK's value, field by field.
pub(crate) fn sdk_session(n: u128, current: Option<bool>) -> sdk::Session {
    sdk::Session {
        id: id(n),
        user_id: "user-42".into(),
        status: sdk_status(SessionStatus::Revoked),
        device: sdk::Device {
            id: "install-8f2c".into(),
            platform: "ios".into(),
            name: Some("Sam's phone".into()),
            model: Some("iPhone15,2".into()),
            app_version: Some("3.4.1".into()),
            fingerprint: Some("fp-77".into()),
        },
        ip: Some("203.0.113.7".into()),
        last_ip: Some("198.51.100.23".into()),
        user_agent: Some("Game/3.4.1 iOS/17.2".into()),
        metadata: metadata(),
        created_at: at(1),
        last_used_at: at(2),
        expires_at: at(5),
        absolute_expires_at: at(6),
        revoked_at: Some(at(3)),
        revoke_reason: Some("logout".into()),
        last_seen_at: Some(at(4)),
        online: Some(true),
        current,
    }
}

/// The SDK's name for each server status (a status added on the server fails to compile here).
pub(crate) fn sdk_status(status: SessionStatus) -> sdk::SessionStatus {
    match status {
        SessionStatus::Active => sdk::SessionStatus::Active,
        SessionStatus::Revoked => sdk::SessionStatus::Revoked,
        SessionStatus::Expired => sdk::SessionStatus::Expired,
    }
}
