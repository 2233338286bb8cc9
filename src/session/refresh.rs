//! The refresh state machine (docs/tokens.md): given the stored session and a presented token, what
//! happens. Pure: the caller applies the decision atomically.

use chrono::{DateTime, Duration, Utc};

use super::{SessionRecord, SessionStatus};
use crate::tokens::refresh::MAX_TRACE_GENERATIONS;
use crate::tokens::{RefreshSecrets, RefreshToken};

/// What to do with a presented refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The current token of an active session: issue its successor.
    Rotate { successor: RefreshToken },
    /// The previous token inside the grace window: answer with the current token again.
    Replay { current: RefreshToken },
    /// A genuine token that was already rotated away (after the grace window, or older): theft.
    Reuse,
    /// A secret we never issued, or a future generation: refuse, change nothing.
    Unknown,
    /// A genuine token of a session that is no longer active.
    Inactive(SessionStatus),
}

/// Decides what a presented `token` means for `session` at `now`.
///
/// Genuineness is established before anything else, so a guessed token learns nothing about the
/// session's state and can never revoke it. A token older than the previous generation is proven
/// genuine by deriving forward to the stored previous hash (at most `MAX_TRACE_GENERATIONS`).
pub fn decide(
    session: &SessionRecord,
    token: &RefreshToken,
    secrets: &RefreshSecrets,
    now: DateTime<Utc>,
    grace: Duration,
) -> Decision {
    let current_gen = session.refresh_generation;
    let is_current = token.generation == current_gen;
    let genuine = if is_current {
        secrets.matches(token, &session.refresh_hash)
    } else if let Some(steps) = derivations(session, token) {
        let previous = secrets.advance(token, steps);
        session.prev_refresh_hash.as_deref().is_some_and(|h| secrets.matches(&previous, h))
    } else {
        false
    };
    if !genuine {
        return Decision::Unknown;
    }
    let status = session.effective_status(now);
    if status != SessionStatus::Active {
        return Decision::Inactive(status);
    }
    if is_current {
        return Decision::Rotate { successor: secrets.successor(token) };
    }
    let in_grace = token.generation == current_gen - 1 && session.rotated_at.is_some_and(|at| now < at + grace);
    if in_grace {
        Decision::Replay { current: secrets.successor(token) }
    } else {
        Decision::Reuse
    }
}

/// How many derivations prove an older `token` genuine (forward to the previous generation,
/// whose hash is stored), or `None` when it is not traced: the current or a future generation, or
/// one further back than [`MAX_TRACE_GENERATIONS`]. This is all the work a presented token can
/// cause besides one hash comparison.
fn derivations(session: &SessionRecord, token: &RefreshToken) -> Option<i64> {
    let steps = session.refresh_generation.checked_sub(1)?.checked_sub(token.generation)?;
    (0..=MAX_TRACE_GENERATIONS).contains(&steps).then_some(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Device;
    use uuid::Uuid;

    const GRACE: Duration = Duration::seconds(20);

    fn secrets() -> RefreshSecrets {
        RefreshSecrets::new([3u8; 32], None)
    }

    fn session_at(s: &RefreshSecrets, t0: &RefreshToken, generation: i64, now: DateTime<Utc>) -> SessionRecord {
        let current = s.advance(t0, generation);
        let previous = (generation > 0).then(|| s.hash(&s.advance(t0, generation - 1)));
        SessionRecord {
            id: t0.session_id,
            user_id: "u".into(),
            status: SessionStatus::Active,
            device: Device {
                id: "d".into(),
                platform: "ios".into(),
                name: None,
                model: None,
                app_version: None,
                fingerprint: None,
            },
            first_ip: None,
            last_ip: None,
            user_agent: None,
            metadata: serde_json::json!({}),
            created_at: now,
            last_used_at: now,
            expires_at: now + Duration::days(1),
            absolute_expires_at: now + Duration::days(2),
            revoked_at: None,
            revoke_reason: None,
            last_seen_at: None,
            refresh_generation: generation,
            refresh_hash: s.hash(&current),
            prev_refresh_hash: previous,
            rotated_at: (generation > 0).then_some(now),
        }
    }

    #[test]
    fn the_current_token_rotates_to_its_derived_successor() {
        let (s, now) = (secrets(), Utc::now());
        let t0 = s.issue_initial(Uuid::new_v4());
        let rec = session_at(&s, &t0, 2, now);
        let current = s.advance(&t0, 2);
        assert_eq!(decide(&rec, &current, &s, now, GRACE), Decision::Rotate { successor: s.successor(&current) });
    }

    #[test]
    fn the_previous_token_replays_inside_the_window_and_is_reuse_after_it() {
        let (s, now) = (secrets(), Utc::now());
        let t0 = s.issue_initial(Uuid::new_v4());
        let rec = session_at(&s, &t0, 2, now);
        let previous = s.advance(&t0, 1);
        let current = s.advance(&t0, 2);
        assert_eq!(decide(&rec, &previous, &s, now + Duration::seconds(19), GRACE), Decision::Replay { current });
        assert_eq!(decide(&rec, &previous, &s, now + GRACE, GRACE), Decision::Reuse);
    }

    #[test]
    fn an_older_genuine_token_is_reuse_even_inside_the_window() {
        let (s, now) = (secrets(), Utc::now());
        let t0 = s.issue_initial(Uuid::new_v4());
        let rec = session_at(&s, &t0, 3, now);
        assert_eq!(decide(&rec, &t0, &s, now, GRACE), Decision::Reuse);
        assert_eq!(decide(&rec, &s.advance(&t0, 1), &s, now, GRACE), Decision::Reuse);
    }

    #[test]
    fn guessed_or_future_tokens_are_unknown_and_never_reuse() {
        let (s, now) = (secrets(), Utc::now());
        let t0 = s.issue_initial(Uuid::new_v4());
        let rec = session_at(&s, &t0, 3, now);
        for generation in [0, 1, 2, 3, 4, 100] {
            let guess = RefreshToken { session_id: t0.session_id, generation, secret: [9u8; 32] };
            assert_eq!(decide(&rec, &guess, &s, now, GRACE), Decision::Unknown, "generation {generation}");
        }
        assert_eq!(decide(&rec, &s.advance(&t0, 4), &s, now, GRACE), Decision::Unknown);
    }

    #[test]
    fn a_token_traced_further_back_than_the_bound_is_unknown_and_costs_no_more() {
        let (s, now) = (secrets(), Utc::now());
        let t0 = s.issue_initial(Uuid::new_v4());
        let depth = MAX_TRACE_GENERATIONS + 2;
        let rec = session_at(&s, &t0, depth, now);
        // Generation 1 is exactly MAX_TRACE_GENERATIONS derivations from the previous one.
        assert_eq!(decide(&rec, &s.advance(&t0, 1), &s, now, GRACE), Decision::Reuse, "at the bound: detected");
        // Generation 0 would cost one more: refused without tracing, and the session lives on.
        assert_eq!(decide(&rec, &t0, &s, now, GRACE), Decision::Unknown, "past the bound: not traced");
        // A forged generation-0 token of a session this deep is refused the same way.
        let forged = RefreshToken { session_id: t0.session_id, generation: 0, secret: [1u8; 32] };
        assert_eq!(decide(&rec, &forged, &s, now, GRACE), Decision::Unknown);
    }

    #[test]
    fn no_presented_token_costs_more_than_512_derivations() {
        let (s, now) = (secrets(), Utc::now());
        let t0 = s.issue_initial(Uuid::new_v4());
        // A session 4,097 rotations deep: a forged generation-0 token once cost 4,096 HMACs.
        let rec = session_at(&s, &t0, 4_097, now);
        let worst = (-1..=4_100)
            .map(|generation| RefreshToken { session_id: t0.session_id, generation, secret: [1u8; 32] })
            .filter_map(|token| derivations(&rec, &token))
            .max();
        assert_eq!(worst, Some(512));
    }

    #[test]
    fn a_genuine_token_of_an_inactive_session_reports_its_state() {
        let (s, now) = (secrets(), Utc::now());
        let t0 = s.issue_initial(Uuid::new_v4());
        let mut rec = session_at(&s, &t0, 0, now);
        assert_eq!(decide(&rec, &t0, &s, now + Duration::days(1), GRACE), Decision::Inactive(SessionStatus::Expired));
        rec.status = SessionStatus::Revoked;
        assert_eq!(decide(&rec, &t0, &s, now, GRACE), Decision::Inactive(SessionStatus::Revoked));
    }
}
