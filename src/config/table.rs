//! The README's configuration table, generated from the settings themselves: keys and
//! environment variables from the clap arguments of [`Config`], meanings from their doc
//! comments, defaults from [`Config::default`]. Tests fail when README.md's table differs, or
//! when docs/ quote a default next to a variable (`` `NAME` (5000) ``) that the code does not
//! have.

use serde_json::Value;

use super::Config;

/// One setting, as the table shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `section.key`, as written in TOML (dotted, or `key` under `[section]`).
    pub key: String,
    pub env: String,
    /// The default, plain (`None`: unset, which the meaning explains).
    pub default: Option<String>,
    pub meaning: String,
}

/// Every setting, in the order of `--help`.
pub fn rows() -> Vec<Row> {
    let defaults = serde_json::to_value(Config::default()).expect("the settings serialize");
    super::bare_command()
        .get_arguments()
        .filter(|arg| arg.get_id() != "config")
        .map(|arg| {
            let key = arg.get_id().as_str().to_owned();
            let value = lookup(&defaults, &key).unwrap_or_else(|| panic!("`{key}` is no key of Config"));
            let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or_else(|| panic!("`{key}` has no env"));
            let meaning = arg.get_help().map(std::string::ToString::to_string).unwrap_or_default();
            Row { default: plain(&key, value), env: env.to_owned(), meaning, key }
        })
        .collect()
}

/// The table, in Markdown.
pub fn markdown() -> String {
    let mut out = String::from("| key | environment | default | meaning |\n|---|---|---|---|\n");
    for row in rows() {
        let default = row.default.map_or_else(|| "none".to_owned(), |d| code_span(&row.key, &d));
        let meaning = row.meaning.replace('|', "\\|");
        out += &format!("| `{}` | `{}` | {default} | {meaning} |\n", row.key, row.env);
    }
    out += "| `platforms.<name>.access_ttl_secs`, `.idle_timeout_secs`, `.absolute_lifetime_secs` \
            | TOML only | the `[sessions]` value | lifetimes for one platform |\n";
    out
}

/// The value at a dotted `key` of `value`.
pub(super) fn lookup<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(value, |v, part| v.get(part))
}

/// A default as `--help` shows it; `None` for an unset one.
pub(super) fn plain(key: &str, value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Array(items) if items.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => match n.as_u64() {
            Some(secs) if key.ends_with("_secs") && secs >= DAY && secs % DAY == 0 => {
                Some(format!("{secs} ({} d)", secs / DAY))
            }
            _ => Some(n.to_string()),
        },
        other => Some(other.to_string()),
    }
}

const DAY: u64 = 86_400;

/// `2592000 (30 d)` becomes `` `2592000` (30 d) ``: only the value is code.
fn code_span(key: &str, default: &str) -> String {
    match default.split_once(" (") {
        Some((value, note)) if key.ends_with("_secs") => format!("`{value}` ({note}"),
        _ => format!("`{default}`"),
    }
}

#[cfg(test)]
mod tests;
