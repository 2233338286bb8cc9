//! The harness: `spawn_app(backend)` starts a node on a random port with its own database, a
//! fresh data directory, a manual clock and two known service keys. Dropping the `TestApp` shuts
//! the node down and removes its database and data directory. Re-exports the typed calls
//! (`calls`) and response assertions (`checks`); `probes` looks behind the API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, RequestBuilder};
use session_service::clock::{Clock, ManualClock};
use session_service::config::Settings;
pub(crate) use session_service::config::{Config, Secret};
use session_service::http::auth::ServiceKeySpec;
use session_service::state::AppState;
use session_test_support::db;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub(crate) use crate::calls::*;
pub(crate) use crate::checks::*;

/// Turns `async fn name(backend: Backend)` items into one `#[tokio::test]` per store:
/// `sqlite::name` and `postgres::name`. A test missing from the list is dead code, which clippy
/// (`-D warnings`) refuses, so none can be forgotten.
macro_rules! both {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            )+
        }
    };
}

/// Like [`both!`], for tests whose subject does not touch the store (the WebSocket codec and
/// limits): one `#[tokio::test]` per name on SQLite only, as `sqlite_only::name`.
macro_rules! sqlite_only {
    ($($name:ident),+ $(,)?) => {
        mod sqlite_only {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )+
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// What `/readyz` reports as `store`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// A data directory removed when the last node using it is dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("session-api-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("creating a temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A per-test database, dropped when the last node using it is dropped.
struct Database {
    backend: Backend,
    url: String,
}

impl Database {
    async fn new(backend: Backend) -> Self {
        let url = match backend {
            Backend::Sqlite => db::sqlite_url(),
            Backend::Postgres => db::postgres_url().await,
        };
        Self { backend, url }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        match self.backend {
            Backend::Sqlite => db::remove_sqlite(&self.url),
            Backend::Postgres => {
                // Drop runs inside the test's runtime, which cannot be blocked on: drop the
                // database from a thread with a runtime of its own, and wait for it.
                let url = self.url.clone();
                let dropped = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
                    rt.expect("a runtime").block_on(db::drop_postgres(&url));
                });
                let _ = dropped.join();
            }
        }
    }
}

/// A running node and what a test needs to talk to it.
pub(crate) struct TestApp {
    pub addr: SocketAddr,
    /// The operator listener, when the test set `ops_listen`.
    ops_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    /// Scopes `sessions:read` + `sessions:write`, named `auth-service`.
    pub writer_key: String,
    /// Scope `sessions:read`, named `dashboard`.
    pub reader_key: String,
    state: AppState,
    db: Arc<Database>,
    dir: Arc<TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

pub(crate) async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], with `tweak` applied to the settings before they are resolved.
pub(crate) async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let db = Arc::new(Database::new(backend).await);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    start(db, Arc::new(TempDir::new()), clock, tweak).await
}

async fn start(
    db: Arc<Database>,
    dir: Arc<TempDir>,
    clock: Arc<ManualClock>,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    init_tracing();
    let writer_key = format!("sk_test_writer_{}", Uuid::new_v4().simple());
    let reader_key = format!("sk_test_reader_{}", Uuid::new_v4().simple());
    let mut config = Config { data_dir: dir.0.clone(), ..Config::default() };
    config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.database.url = Some(Secret(db.url.clone()));
    config.http.service_keys = vec![
        key_spec("auth-service", &writer_key, "sessions:read+sessions:write"),
        key_spec("dashboard", &reader_key, "sessions:read"),
    ];
    config.sessions.sweep_interval_secs = 3600;
    tweak(&mut config);
    let settings = Settings::resolve(config).expect("test settings resolve");
    let app = session_service::app::build(settings, clock.clone()).await.expect("the app builds");
    let addr = app.local_addr();
    let ops_addr = app.ops_addr();
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run(async {
            let _ = rx.await;
        })
        .await
        .expect("the app runs until shutdown");
    });
    let client = reqwest::Client::builder().no_proxy().build().expect("a reqwest client");
    // Once the node answers, its start-up expiry sweep has been spawned (at the start time of the
    // clock), before any test moves the clock.
    let health = client.get(format!("http://{addr}/healthz")).send().await;
    assert!(health.is_ok_and(|r| r.status().is_success()), "the node answers");
    TestApp {
        addr,
        ops_addr,
        client,
        clock,
        writer_key,
        reader_key,
        state,
        db,
        dir,
        shutdown: Some(tx),
        task: Some(task),
    }
}

/// A `ServiceKeySpec` as an operator would write it: `name:sha256hex:scopes`.
pub(crate) fn key_spec(name: &str, key: &str, scopes: &str) -> ServiceKeySpec {
    let hex = hex::encode(Sha256::digest(key.as_bytes()));
    format!("{name}:{hex}:{scopes}").parse().expect("a valid key spec")
}

fn init_tracing() {
    static INIT: Once = Once::new();
    if std::env::var_os("TEST_LOG").is_some() {
        INIT.call_once(|| {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        });
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestApp {
    /// Another node on the same database, data directory and clock, running beside this one.
    pub(crate) async fn sibling(&self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        start(self.db.clone(), self.dir.clone(), self.clock.clone(), tweak).await
    }

    /// Stops this node and starts a new one on the same database, data directory and clock.
    pub(crate) async fn restart(mut self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let (db, dir, clock) = (self.db.clone(), self.dir.clone(), self.clock.clone());
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("the app stops cleanly");
        }
        drop(self);
        start(db, dir, clock, tweak).await
    }

    /// Fires the shutdown signal (as dropping does) and hands back the node's task: awaiting it
    /// waits for `App::run` to return (it panics if `run` failed).
    pub(crate) fn shut_down(&mut self) -> JoinHandle<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("the node is running")
    }

    pub(crate) fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops_addr
    }

    pub(crate) fn state(&self) -> &AppState {
        &self.state
    }

    pub(crate) fn backend(&self) -> Backend {
        self.db.backend
    }

    pub(crate) fn database_url(&self) -> &str {
        &self.db.url
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.dir.0
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A request without credentials.
    pub(crate) fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request with the read+write service key.
    pub(crate) fn writer(&self, method: Method, path: &str) -> RequestBuilder {
        self.anon(method, path).bearer_auth(&self.writer_key)
    }

    /// A request with the read-only service key.
    pub(crate) fn reader(&self, method: Method, path: &str) -> RequestBuilder {
        self.anon(method, path).bearer_auth(&self.reader_key)
    }

    /// A user-API request with a player's access token.
    pub(crate) fn player(&self, method: Method, path: &str, access: &str) -> RequestBuilder {
        self.anon(method, path).bearer_auth(access)
    }
}
