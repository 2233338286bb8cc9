//! The dependency rule, checked: the domain (`src/session/`) owns its ports and imports no adapter,
//! transport, metrics or driver crate. Adapters and transports depend on the domain, never the
//! other way round (docs/architecture.md). This reads the domain's source files, so the rule holds
//! without anyone remembering it.

use std::path::{Path, PathBuf};

/// Modules of this crate the domain must not reach.
const FORBIDDEN_MODULES: &[&str] = &[
    "store", "bus", "http", "ws", "registry", "fleet", "metrics", "census", "server", "state", "app", "config",
    "events",
];

/// Crates that belong to adapters and transports. (`serde` and `utoipa` derives stay allowed: they
/// describe the JSON shape of domain types and do no I/O.)
const FORBIDDEN_CRATES: &[&str] = &[
    "sqlx",
    "redis",
    "axum",
    "hyper",
    "hyper_util",
    "tower",
    "tower_http",
    "tokio_tungstenite",
    "prometheus_client",
    "session_client",
    "reqwest",
    "async_nats",
];

/// The offending paths in `source`: every `crate::<module>` of [`FORBIDDEN_MODULES`] (also inside
/// a grouped `crate::{...}` import) and every `<crate>::` of [`FORBIDDEN_CRATES`], outside
/// comments.
fn forbidden_imports(source: &str) -> Vec<String> {
    let code: String = source.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let mut found = Vec::new();
    for module in FORBIDDEN_MODULES {
        if mentions_path(&code, &format!("crate::{module}")) || grouped(&code).iter().any(|head| head == module) {
            found.push(format!("crate::{module}"));
        }
    }
    for krate in FORBIDDEN_CRATES {
        if mentions_path(&code, krate) {
            found.push((*krate).to_owned());
        }
    }
    found
}

/// The first segment of every path inside a grouped `crate::{...}` import.
fn grouped(code: &str) -> Vec<String> {
    let mut heads = Vec::new();
    for (at, _) in code.match_indices("crate::{") {
        let inner = &code[at + "crate::{".len()..];
        let mut depth = 1;
        let end = inner
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '{' => 1,
                    '}' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(inner.len(), |(i, _)| i);
        // Only the outermost level names modules of the crate.
        let mut level = 0;
        let mut item = String::new();
        for c in inner[..end].chars().chain(std::iter::once(',')) {
            match c {
                '{' => level += 1,
                '}' => level -= 1,
                ',' if level == 0 => {
                    let head = item.trim().split("::").next().unwrap_or("").trim().to_owned();
                    heads.push(head);
                    item.clear();
                    continue;
                }
                _ => {}
            }
            if level == 0 {
                item.push(c);
            }
        }
    }
    heads
}

/// Whether `code` names `path` as a path (followed by `::`, `;`, `,` `}` or ` as`), not as part
/// of a longer identifier.
fn mentions_path(code: &str, path: &str) -> bool {
    code.match_indices(path).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = &code[at + path.len()..];
        let starts_a_path = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
        starts_a_path && (after.starts_with("::") || after.starts_with(';') || after.starts_with(" as "))
    })
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the domain's folder") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_domain_imports_no_adapter_transport_metrics_or_driver() {
    let domain = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/session");
    let files = rust_files(&domain);
    assert!(files.len() >= 10, "the domain's files were not found under {}", domain.display());
    let mut offences = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("read a source file");
        for offence in forbidden_imports(&source) {
            offences.push(format!("{}: {offence}", file.display()));
        }
    }
    assert!(offences.is_empty(), "the domain depends on the outside:\n{}", offences.join("\n"));
}

#[test]
fn the_check_catches_imports_in_every_form_and_ignores_comments_and_longer_names() {
    let bad = "use crate::store::StoreError;\nuse crate::metrics;\nlet x = sqlx::query(\"\");\nuse axum::Router;";
    assert_eq!(forbidden_imports(bad), ["crate::store", "crate::metrics", "sqlx", "axum"]);
    let grouped = "use crate::{\n    clock::{Clock, SystemClock},\n    bus::BusError,\n};";
    assert_eq!(forbidden_imports(grouped), ["crate::bus"]);
    let fine = "use crate::session::store::Store; // crate::store::postgres implements it\nuse crate::tokens::x;\nlet my_redis::y = 1;";
    assert!(forbidden_imports(fine).is_empty(), "{:?}", forbidden_imports(fine));
}
