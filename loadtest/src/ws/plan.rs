//! The pure parts of `ws-revoke`: which node holds a connection and which one revokes it, which
//! connections are sampled, when each revoke is due, and reading a session id off a refresh token.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rand::Rng;

/// The node that revokes sample number `nth` of a connection held by node `holder`, out of
/// `nodes`: never the holder when there are two nodes or more, and cycling through all the others
/// so that every ordered pair of nodes is exercised. With one node, that node.
pub(super) fn revoking_node(holder: usize, nodes: usize, nth: usize) -> usize {
    match nodes {
        0 | 1 => 0,
        k => (holder + 1 + nth % (k - 1)) % k,
    }
}

/// `m` distinct entries of `candidates` in random order (all of them, shuffled, when there are
/// no more than `m`).
pub(super) fn pick<R: Rng>(candidates: &[usize], m: usize, rng: &mut R) -> Vec<usize> {
    rand::seq::index::sample(rng, candidates.len(), m.min(candidates.len()))
        .into_iter()
        .map(|k| candidates[k])
        .collect()
}

/// Paces the revokes at a steady rate: one every `period`, on a fixed grid from the start, so
/// timer lateness does not drift the rate down. When a revoke could only go more than a period
/// late (every in-flight slot was taken), the grid restarts from then instead of catching up in
/// a burst.
#[derive(Debug, Clone)]
pub(super) struct Pacer {
    period: Duration,
    next: Instant,
}

impl Pacer {
    /// `rate` revokes per second (at least 1), the first at `start`.
    pub(super) fn new(start: Instant, rate: u32) -> Self {
        Self { period: Duration::from_secs(1) / rate.max(1), next: start }
    }

    /// When the next revoke is due.
    pub(super) fn due(&self) -> Instant {
        self.next
    }

    /// A revoke went out at `at`.
    pub(super) fn fired(&mut self, at: Instant) {
        self.next = (self.next + self.period).max(at);
    }
}

/// The session id in a refresh token `rt1.<session id>.<generation>.<secret>`; `None` for
/// anything else.
pub(super) fn session_of_refresh_token(token: &str) -> Option<&str> {
    let mut parts = token.split('.');
    let (prefix, session, generation, secret) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let well_formed = prefix == "rt1"
        && !session.is_empty()
        && !secret.is_empty()
        && generation.parse::<u64>().is_ok()
        && parts.next().is_none();
    well_formed.then_some(session)
}

/// The first session id that appears twice among `refresh_tokens` (a second connection of the
/// same session would replace the first, which the server closes with 4103).
pub(super) fn repeated_session<'a>(refresh_tokens: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = HashSet::new();
    refresh_tokens.into_iter().filter_map(session_of_refresh_token).find(|s| !seen.insert(*s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revoking_node_is_never_the_holder_and_cycles_through_all_others() {
        for nodes in 2..=5 {
            for holder in 0..nodes {
                let used: HashSet<usize> = (0..nodes * 3).map(|nth| revoking_node(holder, nodes, nth)).collect();
                assert!(!used.contains(&holder), "{holder} of {nodes} revokes its own connection");
                assert_eq!(used.len(), nodes - 1, "{holder} of {nodes}: {used:?}");
            }
        }
        assert_eq!(revoking_node(0, 1, 7), 0);
        assert_eq!((revoking_node(0, 3, 0), revoking_node(2, 3, 0)), (1, 0));
    }

    #[test]
    fn picked_connections_are_distinct_candidates() {
        let candidates: Vec<usize> = (0..1000).map(|i| i * 3).collect();
        let mut rng = rand::thread_rng();
        let picked = pick(&candidates, 200, &mut rng);
        assert_eq!(picked.len(), 200);
        assert_eq!(picked.iter().collect::<HashSet<_>>().len(), 200, "a connection was picked twice");
        assert!(picked.iter().all(|p| p % 3 == 0 && *p < 3000));
        assert_ne!(pick(&candidates, 200, &mut rng), picked, "two picks gave the same 200 in the same order");
        assert_eq!(pick(&candidates[..5], 200, &mut rng).len(), 5);
    }

    #[test]
    fn revokes_on_time_follow_a_fixed_grid() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, 100);
        for n in 0..50u32 {
            assert_eq!(pacer.due(), start + Duration::from_millis(10) * n);
            // Firing a millisecond late (timer granularity) does not push the grid back.
            pacer.fired(pacer.due() + Duration::from_millis(1));
        }
    }

    #[test]
    fn a_stalled_pacer_restarts_from_the_stall_instead_of_bursting() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start, 100);
        pacer.fired(start);
        let late = start + Duration::from_millis(500);
        pacer.fired(late);
        assert_eq!(pacer.due(), late, "the next goes at once");
        pacer.fired(late);
        assert_eq!(pacer.due(), late + Duration::from_millis(10), "and the one after waits a period");
    }

    #[test]
    fn the_session_id_is_the_second_field_of_a_refresh_token() {
        let id = "0190f3a2-7b1c-7cc0-9d7e-2f5f0c1d2e3f";
        assert_eq!(session_of_refresh_token(&format!("rt1.{id}.0.c2VjcmV0")), Some(id));
        assert_eq!(session_of_refresh_token(&format!("rt1.{id}.17.c2VjcmV0")), Some(id));
        for bad in [
            format!("rt0.{id}.0.c2VjcmV0"),
            format!("rt1.{id}.0"),
            format!("rt1.{id}.x.c2VjcmV0"),
            format!("rt1.{id}.0.c2VjcmV0.extra"),
            "rt1..0.c2VjcmV0".to_owned(),
            "eyJhbGciOiJFZERTQSJ9.e30.sig".to_owned(),
        ] {
            assert_eq!(session_of_refresh_token(&bad), None, "{bad}");
        }
    }

    #[test]
    fn a_session_repeated_in_the_tokens_is_found() {
        let tokens = ["rt1.a.0.s1", "rt1.b.3.s2", "not-a-token", "rt1.a.5.s3"];
        assert_eq!(repeated_session(tokens), Some("a"));
        assert_eq!(repeated_session(tokens[..3].iter().copied()), None);
    }
}
