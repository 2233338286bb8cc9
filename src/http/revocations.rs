//! The revocation feed (`GET /revocations`), for services that verify access tokens locally:
//! the sessions revoked since a cursor, long-polling when there are none yet.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

use super::auth::{Scope, ServiceCaller};
use super::dto::{RevocationPage, RevocationParams, RevocationView};
use super::error::ApiError;
use super::extract::{Json, Query};
use crate::events::feed::FeedAnswer;
use crate::session::store::FeedPosition;
use crate::state::AppState;

/// Page size without `limit`, and the largest one.
const DEFAULT_LIMIT: u32 = 500;
const MAX_LIMIT: u32 = 1000;
/// The longest `wait` a request may ask for (the server caps it further by its own maximum).
const MAX_WAIT_MS: u64 = 60_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/revocations", get(revocations))
}

/// Sessions revoked since `after`, in commit order, each with the time after which it no longer
/// matters. With nothing new, waits up to `wait` ms for a revocation committed on any node and
/// answers as soon as one is; at the end of the wait, answers an empty list and the same cursor.
/// The cursor never skips a revocation, however transactions interleave.
#[utoipa::path(get, path = "/revocations", tag = "service", security(("service_key" = ["sessions:read"])),
    params(RevocationParams),
    responses((status = 200, description = "Revocations after the cursor, and the cursor to read on from", body = RevocationPage)))]
pub async fn revocations(
    State(state): State<AppState>,
    caller: ServiceCaller,
    Query(params): Query<RevocationParams>,
) -> Result<Json<RevocationPage>, ApiError> {
    caller.require(Scope::Read)?;
    let limit = match params.limit {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return Err(ApiError::InvalidField(format!("limit: must be between 1 and {MAX_LIMIT}"))),
    };
    let after = params.after.as_deref().map(decode_cursor).transpose()?;
    let wait = match params.wait {
        None => Duration::ZERO,
        Some(ms) if ms <= MAX_WAIT_MS => Duration::from_millis(ms),
        Some(_) => return Err(ApiError::InvalidField(format!("wait: must be between 0 and {MAX_WAIT_MS} ms"))),
    };
    let answer = state.feed.read(after, wait, limit).await?;
    Ok(Json(page(answer)))
}

fn page(answer: FeedAnswer) -> RevocationPage {
    let revocations = answer
        .revocations
        .into_iter()
        .map(|r| RevocationView {
            session_id: r.session_id,
            user_id: r.user_id,
            revoked_at: r.revoked_at,
            not_after: r.not_after,
        })
        .collect();
    RevocationPage { revocations, cursor: encode_cursor(answer.cursor), has_more: answer.has_more }
}

fn encode_cursor(at: FeedPosition) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", at.major, at.minor.simple()))
}

fn decode_cursor(cursor: &str) -> Result<FeedPosition, ApiError> {
    let bad = || ApiError::InvalidField("after: not a cursor this API returned".into());
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = std::str::from_utf8(&raw).map_err(|_| bad())?;
    let (major, minor) = text.split_once('.').ok_or_else(bad)?;
    // Positions both stores can compare: SQLite's sequence is a signed 64-bit integer.
    let major: u64 = major.parse().ok().filter(|m| i64::try_from(*m).is_ok()).ok_or_else(bad)?;
    Ok(FeedPosition { major, minor: Uuid::try_parse(minor).map_err(|_| bad())? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let at = FeedPosition { major: 1_234_567, minor: Uuid::new_v4() };
        assert_eq!(decode_cursor(&encode_cursor(at)).unwrap(), at);
        let nil = FeedPosition { major: 7, minor: Uuid::nil() };
        assert_eq!(decode_cursor(&encode_cursor(nil)).unwrap(), nil);
        for garbage in ["!!", "", "eA"] {
            assert!(decode_cursor(garbage).is_err(), "{garbage}");
        }
        for text in ["x.y", "12", "-1.00000000000000000000000000000000", "18446744073709551615.0"] {
            assert!(decode_cursor(&URL_SAFE_NO_PAD.encode(text)).is_err(), "{text}");
        }
    }
}
