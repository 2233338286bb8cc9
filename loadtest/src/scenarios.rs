//! The request loops: sessions prepared before the run, then one worker task per unit of
//! concurrency, each with one request in flight, until the deadline or the request budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use session_client::proto::{Created, Device, NewSession};
use session_client::{Error, ServiceClient, SessionClient};

use crate::cli::Scenario;
use crate::stats::Recorder;

/// What every worker shares.
pub(crate) struct Run {
    /// Service API client (creates sessions).
    pub service: ServiceClient,
    /// User API client (refresh, me, validate).
    pub user: SessionClient,
    /// The service API calls the SDK does not make (`get`, `update`): the same pool, by hand.
    pub raw: RawService,
    /// Distinguishes this run's user ids from other runs' against the same server.
    pub run_id: String,
    /// Requests started before this instant are warm-up and not recorded.
    pub measure_from: Instant,
    /// No request starts at or after this instant.
    pub deadline: Instant,
    /// Measured requests left to start; `u64::MAX` when unbounded. An atomic counter, not a
    /// lock: it orders nothing else, so `Relaxed` suffices, and workers never wait on each other.
    pub budget: AtomicU64,
}

impl Run {
    /// Takes one request from the budget; false when it is spent.
    fn take_budget(&self) -> bool {
        self.budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    }
}

/// One worker's share of the work.
pub(crate) enum Work {
    /// Creates sessions for new users: `<run>-w<worker>-<n>`.
    Create { worker: usize, next: u64 },
    /// The newest refresh token of each owned session's rotation chain.
    Refresh { chains: Vec<String>, next: usize },
    /// Access tokens for `GET /session/me`.
    Me { access: Vec<String>, next: usize },
    /// Refresh tokens for `POST /session/validate` (validation does not spend them).
    Validate { refresh: Vec<String>, next: usize },
    /// Session ids for `GET /sessions/{id}`.
    Get { ids: Vec<String>, next: usize },
    /// Session ids for `PUT /sessions/{id}`.
    Update { ids: Vec<String>, next: usize },
    /// Session ids whose tokens `forged` imitates.
    Forged { ids: Vec<String>, next: usize },
}

/// `GET` and `PUT /sessions/{id}` with the service key, over the run's HTTP pool.
pub(crate) struct RawService {
    pub http: reqwest::Client,
    pub base: String,
    pub service_key: String,
}

impl RawService {
    async fn get(&self, id: &str) -> Result<(), Error> {
        let request = self.http.get(format!("{}/sessions/{id}", self.base)).bearer_auth(&self.service_key);
        answered(request).await
    }

    async fn update(&self, id: &str, n: usize) -> Result<(), Error> {
        let body = serde_json::json!({ "device_name": format!("loadtest {n}") });
        let request = self.http.put(format!("{}/sessions/{id}", self.base)).bearer_auth(&self.service_key);
        answered(request.json(&body)).await
    }
}

/// Sends `request`; a non-2xx answer is an error labelled by its status.
async fn answered(request: reqwest::RequestBuilder) -> Result<(), Error> {
    let response = request.send().await.map_err(Error::Transport)?;
    let status = response.status();
    response.bytes().await.map_err(Error::Transport)?; // read to the end, so the connection is reused
    if status.is_success() {
        return Ok(());
    }
    Err(Error::Api { status: status.as_u16(), code: format!("http_{}", status.as_u16()), detail: None })
}

/// A session request for a fresh load-test user.
fn new_session(run_id: &str, label: &str, n: u64) -> NewSession {
    let mut device = Device::new(format!("lt-{run_id}-{label}-{n}"), "loadtest");
    device.app_version = Some(env!("CARGO_PKG_VERSION").to_owned());
    let mut s = NewSession::new(format!("lt-{run_id}-{label}-{n}"), device);
    s.user_agent = Some(concat!("loadtest/", env!("CARGO_PKG_VERSION")).to_owned());
    s
}

/// Creates `count` sessions before the run, `workers` at a time, and deals them out to the
/// workers round-robin. A worker left without sessions (fewer sessions than workers) is dropped.
pub(crate) async fn prepare(run: &Run, scenario: Scenario, count: usize, workers: usize) -> anyhow::Result<Vec<Work>> {
    if scenario == Scenario::Create {
        return Ok((0..workers).map(|worker| Work::Create { worker, next: 0 }).collect());
    }
    let created: Vec<Created> = futures::stream::iter(0..count as u64)
        .map(|n| async move {
            let req = new_session(&run.run_id, "setup", n);
            run.service.create_session(&req).await.with_context(|| format!("creating setup session {n}"))
        })
        .buffer_unordered(workers)
        .try_collect()
        .await?;
    let mut shares: Vec<Vec<Created>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, c) in created.into_iter().enumerate() {
        shares[i % workers].push(c);
    }
    Ok(shares
        .into_iter()
        .filter(|share| !share.is_empty())
        .map(|share| match scenario {
            Scenario::Refresh => {
                Work::Refresh { chains: share.into_iter().map(|c| c.refresh_token).collect(), next: 0 }
            }
            Scenario::Me => Work::Me { access: share.into_iter().map(|c| c.access_token).collect(), next: 0 },
            Scenario::Get => Work::Get { ids: share.into_iter().map(|c| c.session.id.to_string()).collect(), next: 0 },
            Scenario::Update => {
                Work::Update { ids: share.into_iter().map(|c| c.session.id.to_string()).collect(), next: 0 }
            }
            Scenario::Forged => {
                Work::Forged { ids: share.into_iter().map(|c| c.session.id.to_string()).collect(), next: 0 }
            }
            _ => Work::Validate { refresh: share.into_iter().map(|c| c.refresh_token).collect(), next: 0 },
        })
        .collect())
}

/// Runs one worker until the deadline, the budget, or (for `refresh`) the end of its chains.
/// Returns what it measured and what is left of its work.
pub(crate) async fn worker(run: Arc<Run>, mut work: Work) -> (Recorder, Work) {
    let mut recorder = Recorder::new();
    loop {
        let started = Instant::now();
        if started >= run.deadline {
            break;
        }
        let measured = started >= run.measure_from;
        if measured && !run.take_budget() {
            break;
        }
        let Some(outcome) = work.step(&run).await else {
            break;
        };
        if measured {
            match outcome {
                Ok(()) => recorder.success(started.elapsed()),
                Err(e) => recorder.failure(&e),
            }
        }
    }
    (recorder, work)
}

impl Work {
    /// Sends one request; `None` when this worker has nothing left to send.
    async fn step(&mut self, run: &Run) -> Option<Result<(), Error>> {
        match self {
            Work::Create { worker, next } => {
                *next += 1;
                let req = new_session(&run.run_id, &format!("w{worker}"), *next);
                Some(run.service.create_session(&req).await.map(drop))
            }
            Work::Refresh { chains, next } => {
                if chains.is_empty() {
                    return None;
                }
                let i = round_robin(next, chains.len());
                match run.user.refresh(&chains[i]).await {
                    Ok(tokens) => {
                        chains[i] = tokens.refresh_token;
                        Some(Ok(()))
                    }
                    Err(e) => {
                        // A 401/404 ends the chain (revoked, expired, or reuse detected). Anything
                        // else may have rotated or not: present the same token again, which the
                        // grace window answers with the same successor.
                        if matches!(e.status(), Some(401 | 404)) {
                            chains.swap_remove(i);
                        }
                        Some(Err(e))
                    }
                }
            }
            Work::Me { access, next } => {
                let i = round_robin(next, access.len());
                Some(run.user.me(&access[i]).await.map(drop))
            }
            Work::Validate { refresh, next } => {
                let i = round_robin(next, refresh.len());
                Some(run.user.validate(&refresh[i]).await.map(drop))
            }
            Work::Get { ids, next } => {
                let i = round_robin(next, ids.len());
                Some(run.raw.get(&ids[i]).await)
            }
            Work::Update { ids, next } => {
                let i = round_robin(next, ids.len());
                Some(run.raw.update(&ids[i], *next).await)
            }
            Work::Forged { ids, next } => {
                let n = *next;
                let i = round_robin(next, ids.len());
                Some(refused(run.user.validate(&forged_token(&ids[i], n)).await))
            }
        }
    }

    /// Sessions this worker still uses (0 for `create`).
    pub(crate) fn sessions(&self) -> usize {
        match self {
            Work::Create { .. } => 0,
            Work::Refresh { chains, .. } => chains.len(),
            Work::Me { access, .. } => access.len(),
            Work::Validate { refresh, .. } => refresh.len(),
            Work::Get { ids, .. } | Work::Update { ids, .. } | Work::Forged { ids, .. } => ids.len(),
        }
    }
}

/// The `n`th token of a forged flood (see `Scenario::Forged`): garbage, then a well-formed token
/// naming a session that does not exist, then one with a forged secret for `session`.
fn forged_token(session: &str, n: usize) -> String {
    let secret = "A".repeat(43); // 32 zero bytes in base64url: the right shape, never a real secret
    match n % 3 {
        0 => format!("garbage-{n}"),
        1 => format!("rt1.{}.{}.{secret}", uuid::Uuid::new_v4(), n % 5),
        _ => format!("rt1.{session}.{}.{secret}", n % 5),
    }
}

/// A request that must be refused: `401` is the expected answer.
fn refused<T>(answer: Result<T, Error>) -> Result<(), Error> {
    match answer {
        Err(e) if e.status() == Some(401) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Err(Error::Api { status: 200, code: "accepted_a_forged_token".into(), detail: None }),
    }
}

/// The index to use now, advancing `next` over `len` items.
fn round_robin(next: &mut usize, len: usize) -> usize {
    let i = *next % len;
    *next = next.wrapping_add(1);
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_flood_cycles_garbage_unknown_sessions_and_forged_secrets() {
        let victim = uuid::Uuid::new_v4().to_string();
        let tokens: Vec<String> = (0..6).map(|n| forged_token(&victim, n)).collect();
        assert!(tokens[0].starts_with("garbage-") && tokens[3].starts_with("garbage-"));
        for unknown in [&tokens[1], &tokens[4]] {
            assert!(unknown.starts_with("rt1.") && !unknown.contains(&victim), "{unknown}");
        }
        assert!(tokens[2].starts_with(&format!("rt1.{victim}.")) && tokens[5].starts_with(&format!("rt1.{victim}.")));
        let secret = tokens[2].rsplit('.').next().unwrap();
        assert_eq!(secret.len(), 43, "a well-formed 256-bit secret");
    }

    #[test]
    fn only_a_401_counts_as_the_expected_refusal() {
        let api = |status| Error::Api { status, code: "x".into(), detail: None };
        assert!(refused::<()>(Err(api(401))).is_ok());
        assert!(refused::<()>(Err(api(500))).is_err());
        assert!(refused(Ok(())).is_err(), "an accepted forged token is a failure");
    }
}
