//! The contract test's judge: whether a response is one the document declares for its
//! operation (status, content type, body schema) and a well-formed problem when it is an error.

use std::collections::HashMap;

use reqwest::header::{HeaderMap, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Words that would mean a Rust type leaked into an error message.
const RUST_NAMES: [&str; 14] = [
    "struct ",
    "enum ",
    "Request",
    "alloc::",
    "core::",
    "std::",
    "i64",
    "u32",
    "u64",
    "i32",
    "u16",
    "f64",
    "usize",
    "Failed to deserialize",
];

/// JSON Schema validators of the document's schemas, built once each.
pub(crate) struct Judge {
    components: Value,
    validators: HashMap<String, jsonschema::Validator>,
    /// `docs/errors.md`: every `code` served must be listed there.
    errors_doc: String,
}

impl Judge {
    pub(crate) fn new(doc: &Value, errors_doc: String) -> Self {
        Self { components: doc["components"].clone(), validators: HashMap::new(), errors_doc }
    }

    /// Whether `instance` is valid for `schema` (which may `$ref` into the components).
    pub(crate) fn accepts(&mut self, schema: &Value, instance: &Value) -> Result<(), String> {
        let key = schema.to_string();
        if !self.validators.contains_key(&key) {
            let root = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": self.components,
                "allOf": [schema],
            });
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&root)
                .map_err(|e| format!("the document's schema {schema} does not compile: {e}"))?;
            self.validators.insert(key.clone(), validator);
        }
        let errors: Vec<String> =
            self.validators[&key].iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{instance} breaks {schema}: {}", errors.join("; ")))
        }
    }

    /// Checks one response to an operation (`spec` is its object in the document).
    pub(crate) fn response(
        &mut self,
        spec: &Value,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), String> {
        let text = String::from_utf8_lossy(body);
        if status.is_server_error() {
            return Err(format!("a {status}: {text}"));
        }
        let declared = spec["responses"].get(status.as_str()).or_else(|| spec["responses"].get("default"));
        let declared = declared.ok_or_else(|| format!("status {status} is not declared: {text}"))?;
        let content = declared["content"].as_object().cloned().unwrap_or_default();
        if content.is_empty() {
            return if body.is_empty() { Ok(()) } else { Err(format!("{status} declares no body, got {text}")) };
        }
        let served = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let essence = |t: &str| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let (media, declared) =
            content.iter().find(|(media, _)| essence(media) == essence(served)).ok_or_else(|| {
                format!("{status} served as {served:?}, declared {:?}", content.keys().collect::<Vec<_>>())
            })?;
        if !media.ends_with("json") {
            return Ok(());
        }
        let value: Value = serde_json::from_slice(body).map_err(|e| format!("{status} is not JSON ({e}): {text}"))?;
        if let Some(schema) = declared.get("schema") {
            self.accepts(schema, &value).map_err(|e| format!("{status}: {e}"))?;
        }
        if status.is_client_error() {
            self.problem(status, headers, &value)?;
        }
        Ok(())
    }

    fn problem(&self, status: StatusCode, headers: &HeaderMap, problem: &Value) -> Result<(), String> {
        if problem["status"].as_u64() != Some(u64::from(status.as_u16())) {
            return Err(format!("the problem's status is not the response's {status}: {problem}"));
        }
        let code = problem["code"].as_str().unwrap_or_default();
        if !self.errors_doc.contains(&format!("`{code}`")) {
            return Err(format!("code {code} is not in docs/errors.md: {problem}"));
        }
        let words = format!("{} {}", problem["title"], problem["detail"]);
        if let Some(name) = RUST_NAMES.iter().find(|n| words.contains(*n)) {
            return Err(format!("{name:?} in a problem: {problem}"));
        }
        if status == StatusCode::UNAUTHORIZED && headers.get(WWW_AUTHENTICATE).is_none() {
            return Err(format!("a 401 without WWW-Authenticate: {problem}"));
        }
        Ok(())
    }
}
