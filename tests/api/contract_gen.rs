//! Values generated from the JSON Schemas of `docs/openapi.json`, for the contract test: a
//! deterministic source (proptest's ChaCha runner with a fixed seed, values drawn without
//! shrinking), schema-valid values (`value`), and the ways to break them (`Broken`).

use proptest::arbitrary::any;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Map, Value};

/// Deepest nesting of generated objects and arrays (metadata is recursive).
const MAX_DEPTH: u32 = 2;

/// The generator: a seeded runner and the document its `$ref`s point into.
pub(crate) struct Gen {
    runner: TestRunner,
    doc: Value,
}

impl Gen {
    pub(crate) fn new(seed: u8, doc: Value) -> Self {
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]);
        Self { runner: TestRunner::new_with_rng(Config::default(), rng), doc }
    }

    fn sample<S: Strategy>(&mut self, strategy: S) -> S::Value {
        strategy.new_tree(&mut self.runner).expect("a value").current()
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.sample(0..n.max(1))
    }

    pub(crate) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    pub(crate) fn uuid(&mut self) -> uuid::Uuid {
        uuid::Builder::from_random_bytes(self.sample(any::<[u8; 16]>())).into_uuid()
    }

    /// A string matching `pattern` (an anchored ECMA regex of the simple kind the document uses).
    pub(crate) fn matching(&mut self, pattern: &str) -> String {
        let bare = pattern.trim_start_matches('^').trim_end_matches('$');
        self.sample(proptest::string::string_regex(bare).expect("a pattern proptest can generate"))
    }

    /// `schema` with `$ref`s at its top followed into `components`.
    pub(crate) fn resolve(&self, schema: &Value) -> Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => self.resolve(self.doc.pointer(r.trim_start_matches('#')).expect("a $ref into the document")),
            None => schema.clone(),
        }
    }

    /// A value `schema` accepts.
    pub(crate) fn value(&mut self, schema: &Value, depth: u32) -> Value {
        let schema = self.resolve(schema);
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            return self.pick(options);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = schema.get(key).and_then(Value::as_array) {
                // Deep down, only the first branches (scalars, for the recursive metadata).
                let n = if depth >= MAX_DEPTH { branches.len().min(2) } else { branches.len() };
                let branch = branches[self.below(n)].clone();
                return self.value(&branch, depth);
            }
        }
        let kind = match &schema["type"] {
            Value::String(t) => t.clone(),
            Value::Array(types) => {
                let real: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                if real.is_empty() || self.chance(10) {
                    "null".into()
                } else {
                    real[self.below(real.len())].as_str().unwrap_or("null").into()
                }
            }
            _ => "object".into(),
        };
        match kind.as_str() {
            "null" => Value::Null,
            "boolean" => json!(self.chance(50)),
            "integer" => self.integer(&schema),
            "number" => self.pick(&[json!(0), json!(1.5), json!(-7), json!(1e300), json!(5e-324), json!(u64::MAX)]),
            "string" => json!(self.string(&schema)),
            "array" if depth < MAX_DEPTH => {
                let items = schema["items"].clone();
                Value::Array((0..self.below(3)).map(|_| self.value(&items, depth + 1)).collect())
            }
            "array" => json!([]),
            _ => self.object(&schema, depth),
        }
    }

    fn integer(&mut self, schema: &Value) -> Value {
        let min = schema["minimum"].as_i64().unwrap_or(-1000);
        let max = schema["maximum"].as_i64().unwrap_or(1000);
        // The bounds themselves half the time: off-by-one errors live there.
        match self.below(4) {
            0 => json!(min),
            1 => json!(max),
            _ => json!(self.sample(min..=max)),
        }
    }

    fn string(&mut self, schema: &Value) -> String {
        let max = schema["maxLength"].as_u64().map_or(usize::MAX, |m| m as usize);
        let min = schema["minLength"].as_u64().unwrap_or(0) as usize;
        let text = match (schema["format"].as_str(), schema["pattern"].as_str()) {
            (Some("uuid"), _) => self.uuid().to_string(),
            (Some("ipv4"), _) => std::net::Ipv4Addr::from(self.sample(any::<[u8; 4]>())).to_string(),
            (Some("ipv6"), _) => std::net::Ipv6Addr::from(self.sample(any::<[u16; 8]>())).to_string(),
            (_, Some(pattern)) => self.matching(pattern),
            _ => self.matching("[a-zA-Z0-9 ._~-]{0,16}"),
        };
        let mut text: String = text.chars().take(max).collect();
        while text.chars().count() < min {
            text.push('a');
        }
        // Not for the whole range of `[!-~]`, but for what a path segment can carry.
        if text == "." || text == ".." {
            text = "dot".into();
        }
        text
    }

    fn object(&mut self, schema: &Value, depth: u32) -> Value {
        let required: Vec<&str> =
            schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let mut out = Map::new();
        if let Some(properties) = schema["properties"].as_object() {
            for (name, property) in properties {
                if required.contains(&name.as_str()) || self.chance(60) {
                    out.insert(name.clone(), self.value(property, depth + 1));
                }
            }
        }
        if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            let key_pattern = schema["propertyNames"]["pattern"].as_str().unwrap_or("[a-z]{1,8}").to_owned();
            let n = if depth < MAX_DEPTH { self.below(4) } else { 0 };
            for _ in 0..n {
                let key: String = self.matching(&key_pattern).chars().take(12).collect();
                out.insert(key, self.value(extra, depth + 1));
            }
        }
        Value::Object(out)
    }
}

/// A way to break a JSON body the schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Broken {
    /// The object's values as a positional array.
    ArrayForm,
    /// A nested object (`device`) as a positional array.
    NestedArrayForm,
    UnknownField,
    MissingField,
    WrongType,
    /// A string one character too long, or breaking its pattern.
    BadString,
    /// A number outside its bounds.
    OutOfRange,
    /// NUL inside a string or a metadata key.
    Nul,
    /// Not an object at all.
    NotAnObject,
}

impl Broken {
    pub(crate) const ALL: [Broken; 9] = [
        Self::ArrayForm,
        Self::NestedArrayForm,
        Self::UnknownField,
        Self::MissingField,
        Self::WrongType,
        Self::BadString,
        Self::OutOfRange,
        Self::Nul,
        Self::NotAnObject,
    ];

    /// `body` (valid for `schema`) broken this way, or `None` where the schema offers no hold.
    pub(crate) fn apply(self, gen: &mut Gen, schema: &Value, body: &Value) -> Option<Value> {
        let schema = gen.resolve(schema);
        let props = schema["properties"].as_object().cloned().unwrap_or_default();
        let mut out = body.as_object().cloned().unwrap_or_default();
        let present: Vec<String> = out.keys().cloned().collect();
        match self {
            Self::ArrayForm => Some(Value::Array(out.values().cloned().collect())),
            Self::NotAnObject => Some(gen.pick(&[json!("x"), json!(1), json!(null), json!(true)])),
            Self::UnknownField => {
                out.insert("zz_unknown".into(), json!(1));
                Some(Value::Object(out))
            }
            Self::NestedArrayForm => {
                let name = present.into_iter().find(|k| out[k].is_object() && k != "metadata")?;
                let values = out[&name].as_object()?.values().cloned().collect();
                out.insert(name, Value::Array(values));
                Some(Value::Object(out))
            }
            Self::MissingField => {
                let required = schema["required"].as_array()?.first()?.as_str()?.to_owned();
                out.remove(&required);
                Some(Value::Object(out))
            }
            Self::WrongType => {
                let names: Vec<String> = props.keys().cloned().collect();
                if names.is_empty() {
                    return None;
                }
                let name = gen.pick(&names);
                let wrong = if gen.resolve(&props[&name])["type"].to_string().contains("string") {
                    json!(42)
                } else {
                    json!("x")
                };
                out.insert(name, wrong);
                Some(Value::Object(out))
            }
            Self::BadString => {
                let (name, rule) = props.iter().find_map(|(n, p)| {
                    let p = gen.resolve(p);
                    p["maxLength"].as_u64().map(|m| (n.clone(), m))
                })?;
                out.insert(name, json!("a ".repeat(rule as usize / 2 + 1)));
                Some(Value::Object(out))
            }
            Self::OutOfRange => {
                let (name, max) = props.iter().find_map(|(n, p)| p["maximum"].as_i64().map(|m| (n.clone(), m)))?;
                out.insert(name, json!(if gen.chance(50) { max + 1 } else { 0 }));
                Some(Value::Object(out))
            }
            Self::Nul => {
                let names: Vec<String> = props.keys().cloned().collect();
                let name = (!names.is_empty()).then(|| gen.pick(&names))?;
                let nul = if name == "metadata" { json!({ "k": "a\u{0}b" }) } else { json!("a\u{0}b") };
                if name == "device" {
                    let mut device = out.get("device").cloned().unwrap_or_else(|| json!({}));
                    device["id"] = nul;
                    out.insert(name, device);
                } else {
                    out.insert(name, nul);
                }
                Some(Value::Object(out))
            }
        }
    }
}
