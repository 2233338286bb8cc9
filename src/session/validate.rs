//! Input validation for ids and free-text fields, shared by every entry point.

use serde_json::Value;

/// Maximum serialized size of a session's metadata object.
pub const MAX_METADATA_BYTES: usize = 4096;

/// Why an input was refused; the message is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    pub field: &'static str,
    pub problem: &'static str,
}

fn invalid(field: &'static str, problem: &'static str) -> Invalid {
    Invalid { field, problem }
}

/// User ids come from the auth-service: 1-128 printable ASCII characters, no spaces.
pub fn user_id(s: &str) -> Result<(), Invalid> {
    printable("user_id", s, 128)
}

/// Device ids: 1-128 printable ASCII characters, no spaces.
pub fn device_id(s: &str) -> Result<(), Invalid> {
    printable("device.id", s, 128)
}

/// Platforms: 1-32 characters of `[a-z0-9_-]`.
pub fn platform(s: &str) -> Result<(), Invalid> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    ok.then_some(()).ok_or(invalid("device.platform", "must be 1-32 characters of a-z, 0-9, _ or -"))
}

/// Free text (device name, model, user agent...): at most `max` characters, no control
/// characters (NUL among them: Postgres `TEXT` cannot hold it, SQLite would).
pub fn text(field: &'static str, s: &str, max: usize) -> Result<(), Invalid> {
    if s.chars().count() > max {
        return Err(invalid(field, "is too long"));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// IP addresses must parse as IPv4 or IPv6.
pub fn ip(s: &str) -> Result<(), Invalid> {
    s.parse::<std::net::IpAddr>().map(|_| ()).map_err(|_| invalid("ip", "is not an IP address"))
}

/// Metadata must be a JSON object of bounded size, with no NUL in any key or string: Postgres'
/// `jsonb` cannot hold `\u0000` (SQLite would keep it), so both stores refuse it alike.
pub fn metadata(v: &Value) -> Result<(), Invalid> {
    if !v.is_object() {
        return Err(invalid("metadata", "must be a JSON object"));
    }
    if v.to_string().len() > MAX_METADATA_BYTES {
        return Err(invalid("metadata", "is larger than 4096 bytes"));
    }
    if has_nul(v) {
        return Err(invalid("metadata", "must not contain NUL (\\u0000) in any key or string"));
    }
    Ok(())
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn printable(field: &'static str, s: &str, max: usize) -> Result<(), Invalid> {
    let ok = !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(()).ok_or(invalid(field, "must be 1-128 printable ASCII characters without spaces"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_empty_long_and_non_printable_values() {
        assert!(user_id("user-42").is_ok());
        assert!(user_id("").is_err());
        assert!(user_id("a b").is_err());
        assert!(user_id(&"x".repeat(129)).is_err());
        assert!(user_id("é").is_err());
    }

    #[test]
    fn platform_accepts_only_lowercase_tokens() {
        assert!(platform("ios").is_ok());
        assert!(platform("iOS").is_err());
        assert!(platform("").is_err());
    }

    #[test]
    fn metadata_must_be_a_small_object() {
        assert!(metadata(&serde_json::json!({"a": 1})).is_ok());
        assert!(metadata(&serde_json::json!([1])).is_err());
        let big = "x".repeat(MAX_METADATA_BYTES);
        assert!(metadata(&serde_json::json!({ "a": big })).is_err());
    }

    #[test]
    fn metadata_refuses_nul_in_keys_and_strings_at_any_depth() {
        assert!(metadata(&serde_json::json!({"a": "x\u{0}y"})).is_err());
        assert!(metadata(&serde_json::json!({"a\u{0}": 1})).is_err());
        assert!(metadata(&serde_json::json!({"a": [{"b": ["\u{0}"]}]})).is_err());
        assert!(metadata(&serde_json::json!({"a": [{"b": ["\u{1}", null, 0]}]})).is_ok());
    }

    #[test]
    fn text_rejects_control_characters_and_overlong_values() {
        assert!(text("name", "Steam Deck", 10).is_ok());
        assert!(text("name", "a\u{0}b", 10).is_err());
        assert!(text("name", "abcdefghijk", 10).is_err());
    }

    #[test]
    fn text_counts_characters_not_bytes() {
        assert!(text("name", &"é".repeat(10), 10).is_ok());
        assert!(text("name", &"é".repeat(11), 10).is_err());
    }
}
