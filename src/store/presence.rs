//! Heartbeat flushes ([`Store::touch_last_seen`](super::Store::touch_last_seen)) as both backends
//! take them: one entry per session, with its latest time, in id order.

use chrono::{DateTime, Utc};
use uuid::Uuid;

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
}
