//! Refused refreshes and validations of real sessions, written to the audit trail in aggregate.
//!
//! A refusal that proves nothing about any session (a malformed token, or one naming a session
//! that does not exist) is only counted in the metrics: anyone can send those as fast as the
//! network allows, and one audit row each let an unauthenticated client grow the database by
//! megabytes a second. A refusal against a real session (a forged secret for its id, a genuine
//! token of a revoked or expired session) is worth a trace in that session's trail, but not one
//! row per attempt, or a forger could bury the victim's trail: the first attempt of a kind opens
//! a one-minute window and is written at once; the rest of the window is counted, and when it
//! ends one more row records how many more came (`attempts`). So a session's trail grows by at
//! most two rows per kind of refusal per minute per node, however hard it is hammered.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::AuditRecord;

/// How long one window of refusals lasts.
pub const WINDOW: Duration = Duration::minutes(1);
/// Windows tracked at once. Each needs a real session id, so only that many sessions being
/// attacked at the same minute fill it; beyond, refusals are counted in the metrics only.
pub const MAX_WINDOWS: usize = 10_000;

/// What kind of refusal of which session a window counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Kind {
    session: Uuid,
    action: String,
    outcome: String,
    reason: Option<String>,
}

#[derive(Debug)]
struct Window {
    opened: DateTime<Utc>,
    /// Attempts after the first, not yet written.
    more: u32,
    /// The latest of them, the template of the aggregate row (its actor and IP).
    latest: AuditRecord,
}

impl Window {
    /// The row recording the attempts after the first, if there were any.
    fn aggregate(self, at: DateTime<Utc>) -> Option<AuditRecord> {
        (self.more > 0).then(|| AuditRecord { id: Uuid::now_v7(), at, attempts: self.more, ..self.latest })
    }
}

/// What to do with one refusal.
#[derive(Debug, PartialEq)]
pub enum Admitted {
    /// Write these rows now: the refusal opened a window (after the aggregate of the window it
    /// replaces, if that one had more attempts).
    Write(Vec<AuditRecord>),
    /// Counted into an open window; written when it ends.
    Counted,
    /// Too many windows are open: counted in the metrics only.
    Untracked,
}

/// The open windows of this node.
#[derive(Debug, Default)]
pub struct Refusals {
    /// A std mutex: held for one map operation, never across an await.
    open: Mutex<HashMap<Kind, Window>>,
    /// Aggregate rows whose write failed (the store was unreachable): handed out again by the
    /// next [`Refusals::close`], so a failed flush loses no count.
    unwritten: Mutex<Vec<AuditRecord>>,
}

impl Refusals {
    /// Admits the refusal `record` (which names its session) at `now`.
    pub fn admit(&self, record: AuditRecord, now: DateTime<Utc>) -> Admitted {
        let Some(session) = record.session_id else { return Admitted::Write(vec![record]) };
        let kind = Kind {
            session,
            action: record.action.clone(),
            outcome: record.outcome.clone(),
            reason: record.reason.clone(),
        };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rows = Vec::new();
        match open.remove(&kind) {
            Some(mut window) if now < window.opened + WINDOW => {
                window.more += 1;
                window.latest = record;
                open.insert(kind, window);
                return Admitted::Counted;
            }
            Some(ended) => rows.extend(ended.aggregate(now)),
            None if open.len() >= MAX_WINDOWS => return Admitted::Untracked,
            None => {}
        }
        open.insert(kind, Window { opened: now, more: 0, latest: record.clone() });
        rows.push(record);
        Admitted::Write(rows)
    }

    /// Closes the windows that ended by `now` (all of them with `everything`, at shutdown) and
    /// returns the aggregate rows to write.
    pub fn close(&self, now: DateTime<Utc>, everything: bool) -> Vec<AuditRecord> {
        let mut rows = std::mem::take(&mut *self.unwritten.lock().unwrap_or_else(PoisonError::into_inner));
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let ended: Vec<Kind> =
            open.iter().filter(|(_, w)| everything || now >= w.opened + WINDOW).map(|(k, _)| k.clone()).collect();
        rows.extend(ended.iter().filter_map(|k| open.remove(k)).filter_map(|w| w.aggregate(now)));
        rows
    }

    /// Keeps rows from [`Refusals::close`] that could not be written, for the next close.
    pub fn unwritten(&self, rows: impl IntoIterator<Item = AuditRecord>) {
        self.unwritten.lock().unwrap_or_else(PoisonError::into_inner).extend(rows);
    }

    /// Windows open now.
    pub fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Actor;

    fn forged(session: Uuid, at: DateTime<Utc>, ip: &str) -> AuditRecord {
        AuditRecord::new(at, Actor::System, "refresh", "forged")
            .session(session, "u")
            .reason("unknown_secret")
            .ip(Some(ip))
    }

    #[test]
    fn the_first_refusal_of_a_minute_is_written_and_the_rest_are_one_row_when_it_ends() {
        let (refusals, t0, victim) = (Refusals::default(), Utc::now(), Uuid::new_v4());
        let Admitted::Write(first) = refusals.admit(forged(victim, t0, "10.0.0.1"), t0) else { panic!("not written") };
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].attempts, 1);
        for i in 1..=1000 {
            let at = t0 + Duration::milliseconds(i * 50);
            assert_eq!(refusals.admit(forged(victim, at, "10.0.0.2"), at), Admitted::Counted);
        }
        assert!(refusals.close(t0 + Duration::seconds(59), false).is_empty(), "the window is still open");
        let ended = refusals.close(t0 + WINDOW, false);
        assert_eq!(ended.len(), 1);
        assert_eq!((ended[0].attempts, ended[0].ip.as_deref()), (1000, Some("10.0.0.2")));
        assert!(refusals.is_empty());
    }

    #[test]
    fn a_refusal_after_the_window_writes_its_aggregate_and_opens_the_next() {
        let (refusals, t0, victim) = (Refusals::default(), Utc::now(), Uuid::new_v4());
        refusals.admit(forged(victim, t0, "10.0.0.1"), t0);
        refusals.admit(forged(victim, t0, "10.0.0.1"), t0);
        let later = t0 + WINDOW + Duration::seconds(1);
        let Admitted::Write(rows) = refusals.admit(forged(victim, later, "10.0.0.1"), later) else { panic!() };
        assert_eq!(rows.iter().map(|r| r.attempts).collect::<Vec<_>>(), vec![1, 1], "aggregate of one, then new");
    }

    #[test]
    fn kinds_and_sessions_have_windows_of_their_own_and_their_number_is_bounded() {
        let (refusals, t0) = (Refusals::default(), Utc::now());
        let victim = Uuid::new_v4();
        let rejected =
            AuditRecord::new(t0, Actor::System, "refresh", "rejected").session(victim, "u").reason("session_revoked");
        assert!(matches!(refusals.admit(forged(victim, t0, "ip"), t0), Admitted::Write(_)));
        assert!(matches!(refusals.admit(rejected, t0), Admitted::Write(_)));
        for _ in 2..MAX_WINDOWS {
            assert!(matches!(refusals.admit(forged(Uuid::new_v4(), t0, "ip"), t0), Admitted::Write(_)));
        }
        assert_eq!(refusals.admit(forged(Uuid::new_v4(), t0, "ip"), t0), Admitted::Untracked);
        assert_eq!(refusals.admit(forged(victim, t0, "ip"), t0), Admitted::Counted, "open windows still count");
        assert_eq!(refusals.close(t0, true).len(), 1, "at shutdown every window with more attempts is written");
    }

    #[test]
    fn rows_that_could_not_be_written_come_back_with_the_next_close() {
        let (refusals, t0, victim) = (Refusals::default(), Utc::now(), Uuid::new_v4());
        refusals.admit(forged(victim, t0, "ip"), t0);
        refusals.admit(forged(victim, t0, "ip"), t0);
        let rows = refusals.close(t0 + WINDOW, false);
        assert_eq!(rows.len(), 1);
        refusals.unwritten(rows);
        let again = refusals.close(t0 + WINDOW, false);
        assert_eq!(again.iter().map(|r| r.attempts).collect::<Vec<_>>(), vec![1]);
        assert!(refusals.close(t0 + WINDOW, false).is_empty(), "handed out once");
    }
}
