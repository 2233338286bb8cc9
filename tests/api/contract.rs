//! The committed OpenAPI document (`docs/openapi.json`) against a running node, property-based:
//! for every operation, requests generated from its schemas, valid ones and ones broken in the
//! body, a path or query parameter, the credentials, the content type, the request target or the
//! header section. Every answer must have a status the operation declares, the declared content
//! type (problem+json for errors), a body its schema accepts, a documented `code`, no Rust type
//! name, and never be a 5xx; a valid request is never refused as malformed, a broken one always
//! is. Deterministic (fixed seed), bounded (a fixed number of cases, a few seconds per store).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::contract_check::Judge;
use crate::contract_gen::{Broken, Gen};
use crate::helpers::*;

/// Generated requests per operation and store (20 operations).
const CASES_PER_OPERATION: usize = 100;

fn committed(name: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name)).expect("a committed document")
}

/// One operation of the document: its method, path template and object.
struct Operation {
    method: Method,
    path: String,
    spec: Value,
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, spec) in item.as_object().expect("a path item") {
            let method = method.to_uppercase().parse().expect("an HTTP method");
            ops.push(Operation { method, path: path.clone(), spec: spec.clone() });
        }
    }
    ops
}

impl Operation {
    fn params(&self, place: &str) -> Vec<Value> {
        let all = self.spec["parameters"].as_array().cloned().unwrap_or_default();
        all.into_iter().filter(|p| p["in"] == place).collect()
    }

    fn body_schema(&self) -> Option<Value> {
        self.spec["requestBody"]["content"]["application/json"].get("schema").cloned()
    }

    /// The scheme and scopes of the operation's first security requirement.
    fn security(&self) -> Option<(String, Vec<String>)> {
        let first = self.spec["security"].as_array()?.first()?.as_object()?;
        let (scheme, scopes) = first.iter().next()?;
        Some((scheme.clone(), scopes.as_array()?.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()))
    }

    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A session the run knows the tokens of.
#[derive(Debug, Clone)]
struct Known {
    id: uuid::Uuid,
    user: String,
    access: String,
    refresh: String,
}

/// What a case breaks, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Body(Broken),
    RawJson,
    ContentType,
    PathParam,
    Query,
    Credentials,
    /// A body over the default 64 KiB limit.
    TooLarge,
    LongTarget,
    ManyHeaders,
}

/// A generated request.
#[derive(Debug)]
struct Case {
    fault: Fault,
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::try_from(format!("Bearer {token}")).expect("a header value"));
    headers
}

struct Run<'a> {
    app: &'a TestApp,
    gen: Gen,
    judge: Judge,
    known: Vec<Known>,
}

impl Run<'_> {
    /// The faults that apply to `op`, each as likely as a valid case.
    fn fault(&mut self, op: &Operation) -> Fault {
        let mut faults =
            vec![Fault::None, Fault::None, Fault::None, Fault::None, Fault::LongTarget, Fault::ManyHeaders];
        if op.body_schema().is_some() {
            faults.extend([Fault::RawJson, Fault::ContentType, Fault::TooLarge]);
            faults.extend(Broken::ALL.map(Fault::Body));
        }
        if !op.params("path").is_empty() {
            faults.extend([Fault::PathParam, Fault::PathParam]);
        }
        if !op.params("query").is_empty() {
            faults.extend([Fault::Query, Fault::Query]);
        }
        if op.security().is_some() {
            faults.extend([Fault::Credentials, Fault::Credentials]);
        }
        self.gen.pick(&faults)
    }

    fn case(&mut self, op: &Operation) -> Case {
        let fault = self.fault(op);
        // Recent sessions are more likely to be active.
        let start = self.known.len().saturating_sub(6);
        let session = self.known[start + self.gen.below(self.known.len() - start)].clone();
        let mut headers = self.credentials(op, &session, fault == Fault::Credentials);
        let path = self.path(op, &session, fault == Fault::PathParam);
        let mut query = self.query(op, fault == Fault::Query);
        let body = self.body(op, &session, fault, &mut headers);
        match fault {
            Fault::LongTarget => query.push(("pad".into(), "p".repeat(8 * 1024))),
            Fault::ManyHeaders => {
                for i in 0..70 {
                    headers.insert(
                        reqwest::header::HeaderName::try_from(format!("x-pad-{i}")).unwrap(),
                        "1".parse().unwrap(),
                    );
                }
            }
            _ => {}
        }
        Case { fault, path, query, headers, body }
    }

    fn credentials(&mut self, op: &Operation, session: &Known, broken: bool) -> HeaderMap {
        let Some((scheme, scopes)) = op.security() else { return HeaderMap::new() };
        let service = scheme == "service_key";
        if broken {
            let mut options = vec![HeaderMap::new(), bearer("garbage"), bearer(&session.refresh)];
            options.push(bearer(if service { &session.access } else { &self.app.writer_key }));
            if scopes.iter().any(|s| s == "sessions:write") {
                options.push(bearer(&self.app.reader_key));
            }
            return self.gen.pick(&options);
        }
        match (service, scopes.iter().all(|s| s == "sessions:read") && self.gen.chance(50)) {
            (true, true) => bearer(&self.app.reader_key),
            (true, false) => bearer(&self.app.writer_key),
            (false, _) => bearer(&session.access),
        }
    }

    fn path(&mut self, op: &Operation, session: &Known, broken: bool) -> String {
        let mut path = op.path.clone();
        for param in op.params("path") {
            let name = param["name"].as_str().expect("a name").to_owned();
            let value = match (name.as_str(), broken) {
                ("id", true) => self.gen.pick(&["not-a-uuid", "123", "%00", "0000-zz"]).to_owned(),
                ("id", false) if self.gen.chance(70) => session.id.to_string(),
                ("user_id", true) => {
                    self.gen.pick(&["a%20b".to_owned(), "x".repeat(129), "%C3%A9".into(), "a%00b".into()])
                }
                ("user_id", false) if self.gen.chance(60) => encode(&session.user),
                _ => encode(self.gen.value(&param["schema"], 0).as_str().expect("a string parameter")),
            };
            path = path.replace(&format!("{{{name}}}"), &value);
        }
        path
    }

    fn query(&mut self, op: &Operation, broken: bool) -> Vec<(String, String)> {
        let params = op.params("query");
        if broken {
            let param = self.gen.pick(&params);
            let schema = self.gen.resolve(&param["schema"]);
            let bad = match schema["maximum"].as_i64() {
                Some(max) => self.gen.pick(&[(max + 1).to_string(), "0".into(), "abc".into()]),
                None if param["name"] == "status" => "bogus".into(),
                None => self.gen.pick(&["all", "!!", "abc"]).to_owned(),
            };
            let name =
                if self.gen.chance(20) { "zz_unknown".into() } else { param["name"].as_str().unwrap().to_owned() };
            return vec![(name, bad)];
        }
        let mut query = Vec::new();
        // A cursor is opaque: only one the server issued is valid, so valid cases send none
        // (`cursor`, and the feed's `after`); a feed's `wait` would hold a case for its length.
        for param in params.iter().filter(|p| !["cursor", "after", "wait"].contains(&p["name"].as_str().unwrap_or("")))
        {
            if self.gen.chance(50) {
                let value = self.gen.value(&param["schema"], 0);
                let text = match value {
                    Value::Null => continue,
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                query.push((param["name"].as_str().unwrap().to_owned(), text));
            }
        }
        query
    }

    fn body(&mut self, op: &Operation, session: &Known, fault: Fault, headers: &mut HeaderMap) -> Option<Vec<u8>> {
        let schema = op.body_schema()?;
        let optional = op.spec["requestBody"]["required"] != true;
        if optional && fault == Fault::None && self.gen.chance(30) {
            return None;
        }
        let mut valid = self.gen.value(&schema, 0);
        if valid.get("metadata").is_some_and(|m| m.to_string().len() > 4096) {
            valid["metadata"] = json!({});
        }
        if valid.get("refresh_token").is_some() && self.gen.chance(70) {
            valid["refresh_token"] = json!(session.refresh);
        }
        if let Err(e) = self.judge.accepts(&schema, &valid) {
            panic!("the generator made an invalid body for {}: {e}", op.name());
        }
        let body = match fault {
            Fault::Body(broken) => {
                broken.apply(&mut self.gen, &schema, &valid).unwrap_or_else(|| json!("not an object"))
            }
            _ => valid,
        };
        let mut bytes = serde_json::to_vec(&body).unwrap();
        if fault == Fault::TooLarge {
            bytes = serde_json::to_vec(&json!({ "pad": "x".repeat(70 * 1024) })).unwrap();
        }
        if fault == Fault::RawJson {
            bytes = self.gen.pick(&[&b"{"[..], b"{\"a\": 1} x", b"\"\\ud800\"", b"[1,", b""]).to_vec();
        }
        let content_type = match fault {
            Fault::ContentType => self.gen.pick(&[None, Some("text/plain")]),
            _ => Some("application/json"),
        };
        if let Some(t) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(t));
        }
        Some(bytes)
    }

    async fn send(&self, op: &Operation, case: &Case) -> (StatusCode, HeaderMap, Vec<u8>) {
        let query: Vec<String> = case.query.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        let url = if query.is_empty() { case.path.clone() } else { format!("{}?{}", case.path, query.join("&")) };
        let mut req = self.app.anon(op.method.clone(), &url).headers(case.headers.clone());
        if let Some(body) = &case.body {
            req = req.body(body.clone());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{} {url}: {e}", op.method));
        let (status, headers) = (resp.status(), resp.headers().clone());
        (status, headers, resp.bytes().await.expect("a body").to_vec())
    }

    /// Keeps the tokens of sessions the run opened or refreshed.
    fn learn(&mut self, op: &Operation, status: StatusCode, body: &[u8]) {
        let Ok(body) = serde_json::from_slice::<Value>(body) else { return };
        if op.path == "/sessions" && status == StatusCode::CREATED {
            self.known.push(known(&body));
        }
        if op.path == "/session/refresh" && status == StatusCode::OK {
            let id = body["session_id"].as_str().and_then(|s| s.parse().ok());
            if let Some(k) = self.known.iter_mut().find(|k| Some(k.id) == id) {
                k.access = body["access_token"].as_str().unwrap_or_default().into();
                k.refresh = body["refresh_token"].as_str().unwrap_or_default().into();
            }
        }
    }
}

fn known(created: &Value) -> Known {
    Known {
        id: created["session"]["id"].as_str().and_then(|s| s.parse().ok()).expect("session.id"),
        user: created["session"]["user_id"].as_str().expect("user_id").into(),
        access: created["access_token"].as_str().expect("access_token").into(),
        refresh: created["refresh_token"].as_str().expect("refresh_token").into(),
    }
}

/// Whether the outcome fits what the case is: valid ones are never refused as malformed (nor
/// as too large), broken ones are always refused.
fn fits(fault: Fault, status: StatusCode) -> bool {
    const MALFORMED: [u16; 6] = [400, 413, 414, 415, 431, 408];
    match fault {
        Fault::None => !MALFORMED.contains(&status.as_u16()),
        _ => status.is_client_error(),
    }
}

async fn every_answer_is_one_the_openapi_document_declares(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc: Value = serde_json::from_str(&committed("docs/openapi.json")).expect("JSON");
    let mut run = Run {
        app: &app,
        gen: Gen::new(7, doc.clone()),
        judge: Judge::new(&doc, committed("docs/errors.md")),
        known: Vec::new(),
    };
    let mut seen: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    let ops = operations(&doc);
    let mut failures = Vec::new();
    for round in 0..CASES_PER_OPERATION {
        if round % 2 == 0 {
            run.known
                .push(known(&app.create_session_with(session_body(&format!("contract-{}", round % 3))).await.body));
        }
        for op in &ops {
            let case = run.case(op);
            let (status, headers, body) = run.send(op, &case).await;
            seen.entry(op.name()).or_default().insert(status.as_u16());
            let verdict = run.judge.response(&op.spec, status, &headers, &body);
            let outcome = verdict.and_then(|()| {
                if fits(case.fault, status) {
                    Ok(())
                } else {
                    Err(format!("{status} does not fit a {:?} case: {}", case.fault, String::from_utf8_lossy(&body)))
                }
            });
            if let Err(e) = outcome {
                let shown = case.body.as_deref().map(|b| String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned());
                failures.push(format!(
                    "{} {} {:?} body {shown:?}: {e}",
                    op.method,
                    case.path,
                    case.query.iter().map(|q| &q.0).collect::<Vec<_>>()
                ));
            }
            run.learn(op, status, &body);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases broke the contract:\n{}",
        failures.len(),
        ops.len() * CASES_PER_OPERATION,
        failures.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
    // Shown with --nocapture: what the run reached, per operation.
    eprintln!("{backend:?}: statuses seen per operation: {seen:?}");
    for (op, statuses) in &seen {
        let success = statuses.iter().any(|s| (200..300).contains(s));
        let refused = statuses.iter().any(|s| (400..500).contains(s));
        assert!(success && refused, "{op}: the run should see it both succeed and refuse, saw {statuses:?}");
    }
}

async fn methods_the_document_does_not_list_answer_405_problem_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc: Value = serde_json::from_str(&committed("docs/openapi.json")).expect("JSON");
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string()).replace("{user_id}", "u");
        for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            if item.get(method.as_str().to_lowercase()).is_some() {
                continue;
            }
            let resp = app.writer(method.clone(), &concrete).send().await.unwrap();
            assert!(resp.headers().contains_key("allow"), "{method} {path}");
            assert_eq!(
                problem(resp).await,
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into()),
                "{method} {path}"
            );
        }
    }
}

both!(every_answer_is_one_the_openapi_document_declares, methods_the_document_does_not_list_answer_405_problem_json);
