//! The README's table is the generated one, and docs/ quote only the code's defaults.

use std::collections::BTreeSet;
use std::path::Path;

use super::*;

const BEGIN: &str =
    "<!-- settings table: generated from src/config by `UPDATE_README=1 cargo test --lib config::table` -->\n";
const END: &str = "<!-- end of the settings table -->";

/// The keys of every leaf of `value` (sections are objects, settings are the rest).
fn leaves(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value.as_object() {
        Some(fields) => {
            for (name, field) in fields {
                let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                leaves(field, &key, out);
            }
        }
        None => out.push(prefix.to_owned()),
    }
}

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn every_key_of_the_config_is_a_setting_with_an_environment_variable() {
    let mut keys = Vec::new();
    leaves(&serde_json::to_value(Config::default()).unwrap(), "", &mut keys);
    let settings: BTreeSet<String> = rows().into_iter().map(|r| r.key).collect();
    assert_eq!(keys.into_iter().collect::<BTreeSet<_>>(), settings);
    assert!(rows().iter().all(|r| !r.meaning.is_empty()), "every setting says what it does");
}

#[test]
fn the_readme_configuration_table_is_the_generated_one() {
    let readme = read("README.md");
    let start = readme.find(BEGIN).expect("README.md has the table's start marker") + BEGIN.len();
    let end = readme.find(END).expect("README.md has the table's end marker");
    let table = markdown();
    if readme[start..end] == table {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
        std::fs::write(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"), updated).unwrap();
    }
    panic!("README.md's settings table is not the generated one (UPDATE_README=1 rewrites it):\n{table}");
}

/// A default quoted in a doc: the variable, the number, and its unit if one was written.
#[derive(Debug)]
struct Quote {
    env: String,
    number: f64,
    unit: String,
}

/// Defaults written beside a variable: `` `NAME` (5000) ``, `` `NAME`, 20 s by default ``,
/// `` `NAME`, default 15 s `` or `` 5 s (`NAME`) ``.
fn quotes(doc: &str, env: &str) -> Vec<Quote> {
    let name = format!("`{env}`");
    let mut found = Vec::new();
    for (at, _) in doc.match_indices(&name) {
        let after = &doc[at + name.len()..];
        let after = after.strip_prefix(" (").or_else(|| after.strip_prefix(',').map(str::trim_start)).unwrap_or("");
        let after = after.strip_prefix("default ").unwrap_or(after);
        let mut words = after.split([' ', '\n', ')', ',', ';']).filter(|w| !w.is_empty());
        if let Some(number) = number(after, words.next()) {
            let unit = words.next().unwrap_or("").trim_end_matches([':', '.']).to_owned();
            found.push(Quote { env: env.to_owned(), number, unit });
            continue;
        }
        let Some(before) = doc[..at].strip_suffix(" (").or_else(|| doc[..at].strip_suffix('(')) else { continue };
        let mut words = before.rsplit(' ');
        let last = words.next().unwrap_or("");
        match last.replace(',', "").parse() {
            Ok(number) => found.push(Quote { env: env.to_owned(), number, unit: String::new() }),
            Err(_) => {
                if let Some(number) = words.next().and_then(|w| w.replace(',', "").parse().ok()) {
                    found.push(Quote { env: env.to_owned(), number, unit: last.to_owned() });
                }
            }
        }
    }
    found
}

/// `word` as a number, when the text right after the variable starts with it.
fn number(after: &str, word: Option<&str>) -> Option<f64> {
    let word = word?;
    after.starts_with(word).then(|| word.replace(',', "").parse().ok()).flatten()
}

/// The quote in the setting's own unit (`_MS`: milliseconds, `_SECS`: seconds).
fn in_settings_unit(q: &Quote) -> f64 {
    let to_ms = match q.unit.as_str() {
        "ms" => 1.0,
        "s" => 1000.0,
        _ => return q.number,
    };
    if q.env.ends_with("_MS") {
        q.number * to_ms
    } else {
        q.number * to_ms / 1000.0
    }
}

#[test]
fn defaults_quoted_in_the_docs_are_the_settings_defaults() {
    let rows = rows();
    for doc in ["docs/protocol.md", "docs/operations.md", "README.md"] {
        let text = read(doc);
        let mut checked = BTreeSet::new();
        for row in &rows {
            let default = row.default.as_deref().and_then(|d| d.split(' ').next()?.parse::<f64>().ok());
            for q in quotes(&text, &row.env) {
                let code =
                    default.unwrap_or_else(|| panic!("{doc} quotes a default for {} that has none: {q:?}", row.env));
                assert_eq!(in_settings_unit(&q), code, "{doc} quotes {q:?}; the code's default is {code}");
                checked.insert(row.env.clone());
            }
        }
        let expected: &[&str] = match doc {
            "docs/protocol.md" => {
                &["WS_AUTH_TIMEOUT_MS", "WS_HEARTBEAT_INTERVAL_MS", "WS_MAX_MESSAGE_BYTES", "DRAIN_JITTER_MS"]
            }
            "docs/operations.md" => &["HTTP_HEADER_TIMEOUT_MS", "CACHE_TTL_SECS", "STATS_REFRESH_MS"],
            _ => &[],
        };
        for env in expected {
            assert!(checked.contains(*env), "{doc} quotes the default of {env} in a form this test reads");
        }
    }
}

#[test]
fn quotes_are_read_in_each_form_the_docs_use() {
    let doc = "`A_MS` (5000) | `B_SECS`, 20 s by default | `C_MS`,\n  default 15 s | 4096 bytes (`D`; x) | \
               every 5 s (`E_MS`) | `F_MS` (see §7) | `G_SECS=2`";
    let read = |env: &str| quotes(doc, env).iter().map(in_settings_unit).collect::<Vec<_>>();
    assert_eq!(read("A_MS"), [5000.0]);
    assert_eq!(read("B_SECS"), [20.0]);
    assert_eq!(read("C_MS"), [15000.0]);
    assert_eq!(read("D"), [4096.0]);
    assert_eq!(read("E_MS"), [5000.0]);
    assert!(read("F_MS").is_empty() && read("G_SECS").is_empty());
}
