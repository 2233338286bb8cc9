//! (De)serialization of the wire types against realistic server bodies.

use serde_json::json;

use super::*;

fn session_json() -> Value {
    json!({
        "id": "0190b5a4-7c1e-7d2a-9f00-3a1b2c3d4e5f",
        "user_id": "user-42",
        "status": "active",
        "device": {
            "id": "install-8f2c",
            "platform": "ios",
            "name": "Sam's phone",
            "model": "iPhone15,2",
            "app_version": "3.4.1"
        },
        "ip": "203.0.113.7",
        "last_ip": "198.51.100.23",
        "user_agent": "Game/3.4.1 iOS/17.2",
        "metadata": { "login_method": "password", "region": "eu" },
        "created_at": "2026-11-20T10:00:00Z",
        "last_used_at": "2026-11-23T08:15:42.123456Z",
        "expires_at": "2026-12-23T08:15:42.123456Z",
        "absolute_expires_at": "2027-05-19T10:00:00Z",
        "last_seen_at": "2026-11-23T08:20:00+00:00",
        "online": true
    })
}

#[test]
fn a_full_session_decodes() {
    let s: Session = serde_json::from_value(session_json()).unwrap();
    assert_eq!(s.id.to_string(), "0190b5a4-7c1e-7d2a-9f00-3a1b2c3d4e5f");
    assert_eq!(s.status, SessionStatus::Active);
    assert_eq!(s.device.model.as_deref(), Some("iPhone15,2"));
    assert_eq!(s.device.fingerprint, None);
    assert_eq!(s.last_ip.as_deref(), Some("198.51.100.23"));
    assert_eq!(s.metadata["region"], "eu");
    assert_eq!(s.online, Some(true));
    assert_eq!(s.current, None);
    assert_eq!(s.revoked_at, None);
    assert_eq!(s.last_used_at.timestamp_subsec_micros(), 123_456);
}

#[test]
fn a_minimal_session_with_unknown_fields_and_states_decodes() {
    let v = json!({
        "id": "0190b5a4-7c1e-7d2a-9f00-3a1b2c3d4e5f",
        "user_id": "u",
        "status": "quarantined",
        "device": { "id": "d", "platform": "ps5", "serial": "x" },
        "metadata": null,
        "created_at": "2026-11-20T10:00:00Z",
        "last_used_at": "2026-11-20T10:00:00Z",
        "expires_at": "2026-12-20T10:00:00Z",
        "absolute_expires_at": "2027-05-19T10:00:00Z",
        "risk": { "level": "low" }
    });
    let s: Session = serde_json::from_value(v).unwrap();
    assert_eq!(s.status, SessionStatus::Unknown);
    assert!(s.metadata.is_empty());
    assert_eq!(s.ip, None);
}

#[test]
fn a_revoked_session_carries_its_reason() {
    let mut v = session_json();
    v["status"] = json!("revoked");
    v["revoked_at"] = json!("2026-11-23T09:00:00Z");
    v["revoke_reason"] = json!("refresh_token_reuse");
    let s: Session = serde_json::from_value(v).unwrap();
    assert_eq!(s.status, SessionStatus::Revoked);
    assert_eq!(s.revoke_reason.as_deref(), Some("refresh_token_reuse"));
    assert!(s.revoked_at.is_some());
}

#[test]
fn a_refresh_answer_decodes_and_its_debug_hides_the_tokens() {
    let v = json!({
        "session_id": "0190b5a4-7c1e-7d2a-9f00-3a1b2c3d4e5f",
        "token_type": "Bearer",
        "access_token": "eyJhbGciOiJFZERTQSJ9.e30.c2ln",
        "access_token_expires_at": "2026-11-23T08:25:42Z",
        "refresh_token": "rt1.0190b5a4-7c1e-7d2a-9f00-3a1b2c3d4e5f.3.q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA",
        "refresh_token_expires_at": "2026-12-23T08:15:42Z"
    });
    let t: Tokens = serde_json::from_value(v).unwrap();
    assert_eq!(t.token_type, "Bearer");
    assert!(t.refresh_token.starts_with("rt1."));
    let shown = format!("{t:?}");
    assert!(!shown.contains("eyJ") && !shown.contains("rt1."), "{shown}");
}

#[test]
fn me_marks_the_current_session() {
    let mut current = session_json();
    current["current"] = json!(true);
    let mut other = session_json();
    other["id"] = json!("0190b5a4-7c1e-7d2a-9f00-000000000002");
    other["current"] = json!(false);
    let v = json!({
        "user_id": "user-42",
        "session_id": "0190b5a4-7c1e-7d2a-9f00-3a1b2c3d4e5f",
        "sessions": [current, other]
    });
    let me: MySessions = serde_json::from_value(v).unwrap();
    let flags: Vec<_> = me.sessions.iter().map(|s| s.current).collect();
    assert_eq!(flags, [Some(true), Some(false)]);
    assert_eq!(me.sessions[0].id, me.session_id);
}

#[test]
fn validate_and_logout_all_answers_decode() {
    let v: ValidateResponse = serde_json::from_value(json!({ "valid": true, "session": session_json() })).unwrap();
    assert!(v.valid && v.session.is_some());
    let r: Revoked = serde_json::from_str(r#"{"revoked": 3}"#).unwrap();
    assert_eq!(r.revoked, 3);
}

#[test]
fn a_create_request_sends_only_what_was_set() {
    let mut req = NewSession::new("user-42", Device::new("install-8f2c", "android"));
    req.ip = Some("203.0.113.7".into());
    assert_eq!(
        serde_json::to_value(&req).unwrap(),
        json!({ "user_id": "user-42", "device": { "id": "install-8f2c", "platform": "android" }, "ip": "203.0.113.7" })
    );
    req.device.app_version = Some("3.4.1".into());
    req.metadata = Some(json!({ "login_method": "sso" }).as_object().unwrap().clone());
    let v = serde_json::to_value(&req).unwrap();
    assert_eq!(v["device"]["app_version"], "3.4.1");
    assert_eq!(v["metadata"]["login_method"], "sso");
}

#[test]
fn a_create_answer_decodes_and_yields_its_tokens() {
    let v = json!({
        "session": session_json(),
        "access_token": "eyJhbGciOiJFZERTQSJ9.e30.c2ln",
        "access_token_expires_at": "2026-11-23T08:25:42Z",
        "refresh_token": "rt1.0190b5a4-7c1e-7d2a-9f00-3a1b2c3d4e5f.0.AAAA",
        "refresh_token_expires_at": "2026-12-23T08:15:42Z"
    });
    let c: Created = serde_json::from_value(v).unwrap();
    let t = c.tokens();
    assert_eq!((t.session_id, t.token_type.as_str()), (c.session.id, "Bearer"));
    assert_eq!(t.refresh_token, c.refresh_token);
    assert!(!format!("{c:?}").contains("rt1."));
}

#[test]
fn a_problem_body_decodes_with_and_without_optional_members() {
    let p: Problem = serde_json::from_str(
        r#"{"type":"urn:session-service:problem:invalid_field","title":"ip: is not an IP address",
            "status":400,"code":"invalid_field","detail":"ip: is not an IP address","instance":"/sessions"}"#,
    )
    .unwrap();
    assert_eq!((p.status, p.code.as_str()), (400, "invalid_field"));
    assert_eq!(p.detail.as_deref(), Some("ip: is not an IP address"));
    let p: Problem = serde_json::from_str(r#"{"status":401,"code":"session_revoked"}"#).unwrap();
    assert_eq!((p.kind.as_str(), p.title.as_str(), p.detail), ("about:blank", "", None));
}

#[test]
fn a_refresh_request_is_one_field_and_hides_its_token_in_debug() {
    let r = RefreshRequest { refresh_token: "rt1.x.0.y".into() };
    assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"refresh_token":"rt1.x.0.y"}"#);
    assert!(!format!("{r:?}").contains("rt1"));
}
