//! The sessions the connections run on: created through the service API (one distinct user each,
//! so the per-user session cap never revokes one of them), or read from a tokens file.

use std::fmt;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{StreamExt, TryStreamExt};
use session_client::proto::{Device, NewSession};
use session_client::ServiceClient;

/// The tokens one connection needs.
#[derive(Clone)]
pub(super) struct Tokens {
    /// Access token for the `auth` frame.
    pub access: String,
    /// Refresh token for answering `token_expiring`; absent when the file had none.
    pub refresh: Option<String>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

/// Creates `count` sessions, `concurrency` requests at a time, printing progress.
pub(super) async fn create(
    base: &str,
    service_key: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Tokens>> {
    let http = crate::http_client(base, concurrency, Duration::from_secs(10)).await?;
    let service = ServiceClient::with_client(base, service_key, http);
    let run_id = format!("{:x}{:x}", std::process::id(), crate::unix_nanos() % (1 << 40));

    let started = Instant::now();
    let mut created = Vec::with_capacity(count);
    let mut requests = futures::stream::iter(0..count)
        .map(|n| {
            let (service, req) = (&service, new_session(&run_id, n));
            async move { service.create_session(&req).await.with_context(|| format!("creating session {n}")) }
        })
        .buffer_unordered(concurrency);
    while let Some(c) = requests.try_next().await? {
        created.push(Tokens { access: c.access_token, refresh: Some(c.refresh_token) });
        if created.len() % 5000 == 0 && created.len() < count {
            eprintln!("created {} of {count} sessions", created.len());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!("created {count} sessions in {secs:.1} s ({:.0}/s)", count as f64 / secs.max(1e-9));
    Ok(created)
}

/// A session for load-test user `lt-<run>-ws-<n>`.
fn new_session(run_id: &str, n: usize) -> NewSession {
    let id = format!("lt-{run_id}-ws-{n}");
    let mut device = Device::new(id.clone(), "loadtest");
    device.app_version = Some(env!("CARGO_PKG_VERSION").to_owned());
    let mut s = NewSession::new(id, device);
    s.user_agent = Some(concat!("loadtest/", env!("CARGO_PKG_VERSION")).to_owned());
    s
}

/// Writes one session a line, `<access> <refresh>`, readable by the owner only (they are live
/// credentials for the test server).
pub(super) fn write(path: &Path, sessions: &[Tokens]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    for s in sessions {
        writeln!(out, "{} {}", s.access, s.refresh.as_deref().unwrap_or_default())?;
    }
    out.flush().with_context(|| format!("writing {}", path.display()))
}

/// Reads the first `count` sessions of a tokens file: `<access> [<refresh>]` a line, blank lines
/// skipped.
pub(super) fn read(path: &Path, count: usize) -> anyhow::Result<Vec<Tokens>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut sessions = Vec::with_capacity(count);
    for line in std::io::BufReader::new(file).lines() {
        if sessions.len() == count {
            break;
        }
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if let Some(tokens) = parse_line(&line) {
            sessions.push(tokens);
        }
    }
    if sessions.len() < count {
        bail!("{} holds {} sessions, fewer than the {count} connections asked for", path.display(), sessions.len());
    }
    Ok(sessions)
}

fn parse_line(line: &str) -> Option<Tokens> {
    let mut fields = line.split_whitespace();
    let access = fields.next()?.to_owned();
    Some(Tokens { access, refresh: fields.next().map(str::to_owned) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokens_file_reads_back_what_was_written() {
        let path = std::env::temp_dir().join(format!("loadtest-tokens-{}", std::process::id()));
        let sessions = vec![
            Tokens { access: "a1".into(), refresh: Some("r1".into()) },
            Tokens { access: "a2".into(), refresh: None },
            Tokens { access: "a3".into(), refresh: Some("r3".into()) },
        ];
        write(&path, &sessions).unwrap();
        let back = read(&path, 2).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].access.as_str(), back[0].refresh.as_deref()), ("a1", Some("r1")));
        assert_eq!((back[1].access.as_str(), back[1].refresh.as_deref()), ("a2", None));
        assert!(read(&path, 4).is_err(), "more connections than sessions");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn tokens_stay_out_of_debug_output() {
        let t = Tokens { access: "secret-access".into(), refresh: Some("secret-refresh".into()) };
        assert!(!format!("{t:?}").contains("secret"));
    }
}
