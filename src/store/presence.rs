//! What both backends share of presence: heartbeat flushes
//! ([`Store::touch_last_seen`](super::Store::touch_last_seen)) as they take them (one entry per
//! session, with its latest time, in id order), and the answer of a reconciliation
//! ([`Store::inactive_among`](super::Store::inactive_among)) from the rows they found.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::session::reasons;

/// `seen` with one entry per session id (the latest time given for it), sorted by id.
///
/// One entry per id keeps the count of changed rows exact and the update free of ambiguity (a
/// join that matches a row twice updates it with either value). Id order means concurrent
/// flushes that overlap lock their rows in the same order wherever the plan follows the input.
pub(crate) fn latest_per_session(seen: &[(Uuid, DateTime<Utc>)]) -> Vec<(Uuid, DateTime<Utc>)> {
    let mut latest = seen.to_vec();
    // Latest first within an id, so `dedup_by_key` keeps it.
    latest.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    latest.dedup_by_key(|(id, _)| *id);
    latest
}

/// `ids` without repeats, sorted, so each is looked up and reported once.
pub(crate) fn distinct(ids: &[Uuid]) -> Vec<Uuid> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The answer of `inactive_among` for the distinct `ids` asked about, given `found`: for each of
/// them that has a row, why it is inactive (`None` when it is active). An id without a row was
/// deleted.
pub(crate) fn inactive_or_deleted(ids: Vec<Uuid>, mut found: HashMap<Uuid, Option<String>>) -> Vec<(Uuid, String)> {
    ids.into_iter()
        .filter_map(|id| match found.remove(&id) {
            None => Some((id, reasons::DELETED.to_owned())),
            Some(why) => why.map(|why| (id, why)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    #[test]
    fn keeps_the_latest_time_of_each_id_in_id_order() {
        let t = DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap();
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let us = Duration::microseconds;
        let seen = [(c, t), (a, t + us(1)), (c, t + us(5)), (b, t), (a, t), (c, t + us(2))];
        assert_eq!(latest_per_session(&seen), [(a, t + us(1)), (b, t), (c, t + us(5))]);
        assert!(latest_per_session(&[]).is_empty());
    }

    #[test]
    fn distinct_ids_come_once_each_in_order() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(distinct(&[b, a, b, a, a]), [a, b]);
        assert!(distinct(&[]).is_empty());
    }

    #[test]
    fn ids_without_a_row_are_deleted_and_active_ones_are_left_out() {
        let (active, revoked, missing) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let found = HashMap::from([(active, None), (revoked, Some("logout".to_owned()))]);
        let answer = inactive_or_deleted(vec![active, revoked, missing], found);
        assert_eq!(answer, [(revoked, "logout".to_owned()), (missing, reasons::DELETED.to_owned())]);
    }
}
