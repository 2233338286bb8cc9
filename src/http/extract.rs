//! Wrappers around axum's extractors whose rejections use our problem format, and the JSON
//! decoding every request body goes through: objects only (serde's derived structs would also
//! take a positional array), the path of the faulty field in the message, no Rust type names.

use std::fmt;
use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::http::error::{plain_words, ApiError};

/// JSON body; a body that is not a JSON object, unknown fields, wrong types, oversized or stalled
/// bodies answer problem+json.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = read_body(req, state).await?;
        decode(&bytes).map(Self)
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// How long a whole request body may take to arrive, put on every request by the router. Pauses
/// inside a body are bounded by tower-http's request-body timeout; this bounds the total, so a
/// body trickling in a byte at a time (never pausing long) ends too.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub std::time::Duration);

/// Reads the whole body, within the request's [`BodyDeadline`] when it has one.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let deadline = req.extensions().get::<BodyDeadline>().copied();
    let reading = Bytes::from_request(req, state);
    let read = match deadline {
        Some(BodyDeadline(within)) => {
            tokio::time::timeout(within, reading).await.map_err(|_| ApiError::RequestTimeout)?
        }
        None => reading.await,
    };
    Ok(read?)
}

/// `application/json` or an `application/*+json` type, parameters ignored (as axum's own `Json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Decodes a request body that must be one JSON object of shape `T`. The message names the
/// field at fault (`device.platform: invalid type: ...`).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let Object(value) = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = describe(&e.into_inner());
        ApiError::BadRequest(if path == "." { message } else { format!("{path}: {message}") })
    })?;
    de.end().map_err(|e| ApiError::BadRequest(describe(&e)))?;
    Ok(value)
}

fn describe(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Data => plain_words(&e.to_string()),
        _ => format!("not valid JSON: {e}"),
    }
}

/// A `T` that may only be written as a JSON object, never as a positional array.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object(d).map(Self)
    }
}

/// `#[serde(deserialize_with = "object")]` for a nested struct field: accepts only a JSON object
/// (a derived `Deserialize` also takes a sequence, filling the fields by position).
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(ObjectVisitor(PhantomData))
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
    }
}

/// Path parameters; a malformed id answers `invalid_id`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query string; unknown or malformed parameters answer `bad_request`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// An optional JSON body: empty means `T::default()`, anything else must parse as `T`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let has_body = req.headers().contains_key(CONTENT_TYPE);
        if !has_body {
            let bytes = read_body(req, state).await?;
            return if bytes.is_empty() { Ok(Self(T::default())) } else { Err(ApiError::UnsupportedMediaType) };
        }
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt;
    use tower_http::timeout::RequestBodyTimeoutLayer;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, expecting = "a JSON object with a and inner")]
    struct Outer {
        #[allow(dead_code)]
        a: u32,
        #[serde(deserialize_with = "object")]
        #[allow(dead_code)]
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    struct Inner {
        #[allow(dead_code)]
        b: String,
    }

    fn refusal(body: &str) -> String {
        match decode::<Outer>(body.as_bytes()) {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn positional_arrays_are_refused_at_the_top_and_inside() {
        assert!(decode::<Outer>(br#"{"a": 1, "inner": {"b": "x"}}"#).is_ok());
        assert_eq!(refusal(r#"[1, {"b": "x"}]"#), "invalid type: sequence, expected a JSON object at line 1 column 0");
        assert_eq!(
            refusal(r#"{"a": 1, "inner": ["x"]}"#),
            "inner: invalid type: sequence, expected a JSON object at line 1 column 18"
        );
    }

    #[test]
    fn messages_name_the_field_and_no_rust_type() {
        assert_eq!(
            refusal(r#"{"a": "1", "inner": {"b": "x"}}"#),
            "a: invalid type: string \"1\", expected an integer at line 1 column 9"
        );
        assert_eq!(
            refusal(r#"{"a": 1, "inner": {"b": 2}}"#),
            "inner.b: invalid type: integer `2`, expected a string at line 1 column 25"
        );
        assert_eq!(
            refusal(r#"{"a": 1, "inner": {"b": "x"}} {}"#),
            "not valid JSON: trailing characters at line 1 column 31"
        );
        assert_eq!(refusal("7"), "invalid type: integer `7`, expected a JSON object at line 1 column 1");
    }

    /// A body that sends one byte and then nothing, ever.
    fn stalled_body() -> Body {
        let first = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"{")) });
        Body::from_stream(futures::StreamExt::chain(first, futures::stream::pending()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_stalled_past_the_request_body_timeout_answers_408() {
        async fn take(Json(_): Json<serde_json::Value>) {}
        async fn take_optional(OptionalJson(_): OptionalJson<std::collections::BTreeMap<String, u8>>) {}
        let app = Router::new()
            .route("/json", post(take))
            .route("/optional", post(take_optional))
            .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(5)));
        for (path, content_type) in [("/json", Some("application/json")), ("/optional", None)] {
            let mut req = axum::http::Request::post(path);
            if let Some(t) = content_type {
                req = req.header(CONTENT_TYPE, t);
            }
            let resp = app.clone().oneshot(req.body(stalled_body()).unwrap()).await.unwrap();
            assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT, "{path}");
            assert_eq!(resp.headers()[CONTENT_TYPE], "application/problem+json");
            let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
            let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(problem["code"], "request_timeout", "{path}");
        }
    }
}
