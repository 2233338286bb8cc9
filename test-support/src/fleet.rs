//! A fleet of local nodes: several processes of the server binary sharing one data directory (so
//! the first node's signing keys and default service key serve them all), one database and, when
//! asked, one private Redis for the bus and the cache. Everything is on loopback, every port is
//! chosen by the process that listens on it, and every step is bounded. Dropping a fleet kills its
//! processes; [`Fleet::stop`] also drops its Postgres database.

use std::path::PathBuf;

use crate::db;
use crate::node::NodeProcess;
use crate::redis::RedisServer;
use crate::{ScratchDir, StartError};

/// Variables the fleet sets on every node itself; an extra variable may not replace them.
const RESERVED_ENV: &[&str] = &["LISTEN", "DATA_DIR", "DATABASE_URL", "REDIS_URL", "SERVICE_KEYS"];

/// Where the nodes keep their sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// The server's default: a SQLite file in the data directory (one node only).
    Sqlite,
    /// A fresh `sst_<uuid>` database created through `admin_url` (a URL allowed to create
    /// databases), dropped by [`Fleet::stop`].
    Postgres { admin_url: String },
}

/// What to start.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// The server binary.
    pub server_bin: PathBuf,
    /// How many nodes, at least one.
    pub nodes: usize,
    pub database: Database,
    /// Start a private `redis-server` and point every node at it. Without one each node has an
    /// in-process bus of its own, so more than one node needs it.
    pub redis: bool,
    /// Extra environment for every node, e.g. `WS_MAX_CONNECTIONS`. A `RUST_LOG` must let the
    /// server's info-level `listening` line through: that is how a node's address is learnt.
    pub env: Vec<(String, String)>,
}

impl FleetSpec {
    /// One node on SQLite and its in-process bus.
    pub fn single(server_bin: impl Into<PathBuf>) -> FleetSpec {
        FleetSpec { server_bin: server_bin.into(), nodes: 1, database: Database::Sqlite, redis: false, env: Vec::new() }
    }

    /// Refuses what cannot make one fleet: no node, several nodes that would not share their
    /// sessions or their bus, or an extra variable that would undo the fleet's own.
    pub fn check(&self) -> Result<(), StartError> {
        let invalid = |why: String| Err(StartError::Invalid(why));
        if self.nodes == 0 {
            return invalid("a fleet needs at least one node".to_owned());
        }
        if self.nodes > 1 && self.database == Database::Sqlite {
            return invalid("several nodes need a shared database: use Postgres".to_owned());
        }
        if self.nodes > 1 && !self.redis {
            return invalid("several nodes need a shared bus: start Redis".to_owned());
        }
        if let Some((name, _)) = self.env.iter().find(|(name, _)| RESERVED_ENV.contains(&name.as_str())) {
            return invalid(format!("{name} is set by the fleet itself"));
        }
        Ok(())
    }
}

/// Running nodes and what they share.
pub struct Fleet {
    // Fields drop in order: the nodes before the Redis they use, the data directory last.
    nodes: Vec<NodeProcess>,
    redis: Option<RedisServer>,
    /// The Postgres database, as (admin URL, database URL), until [`Fleet::stop`] drops it.
    database: Option<(String, String)>,
    service_key: String,
    data_dir: ScratchDir,
}

impl Fleet {
    /// Creates the database, starts Redis, then the nodes one at a time (the first generates the
    /// keys the others load), each waited for until it reports its address. On failure, whatever
    /// was started is stopped again before the error is returned.
    pub async fn start(spec: &FleetSpec) -> Result<Fleet, StartError> {
        spec.check()?;
        let mut fleet = Fleet {
            nodes: Vec::with_capacity(spec.nodes),
            redis: None,
            database: None,
            service_key: String::new(),
            data_dir: ScratchDir::new("fleet"),
        };
        match fleet.fill(spec).await {
            Ok(()) => Ok(fleet),
            Err(e) => {
                // The start-up error is the one worth reporting; a database left behind is named
                // `sst_*`, which `scripts/test.sh` cleans up.
                let _ = fleet.stop().await;
                Err(e)
            }
        }
    }

    async fn fill(&mut self, spec: &FleetSpec) -> Result<(), StartError> {
        let mut env = vec![("DATA_DIR".to_owned(), self.data_dir.path().display().to_string())];
        if let Database::Postgres { admin_url } = &spec.database {
            let url = db::create_database(admin_url).await?;
            self.database = Some((admin_url.clone(), url.clone()));
            env.push(("DATABASE_URL".to_owned(), url));
        }
        if spec.redis {
            let redis = RedisServer::try_start().await?;
            env.push(("REDIS_URL".to_owned(), redis.url()));
            self.redis = Some(redis);
        }
        env.extend(spec.env.iter().cloned());
        let env: Vec<(&str, String)> = env.iter().map(|(name, value)| (name.as_str(), value.clone())).collect();
        let bin = spec.server_bin.to_string_lossy();
        for _ in 0..spec.nodes {
            self.nodes.push(NodeProcess::start(&bin, &env).await?);
        }
        let path = self.data_dir.path().join("service-key");
        let key = std::fs::read_to_string(&path).map_err(|source| StartError::Read { path, source })?;
        key.trim().clone_into(&mut self.service_key);
        Ok(())
    }

    /// The nodes, in start order.
    pub fn nodes(&self) -> &[NodeProcess] {
        &self.nodes
    }

    /// `http://127.0.0.1:<port>` of each node, in start order.
    pub fn base_urls(&self) -> Vec<String> {
        self.nodes.iter().map(NodeProcess::base_url).collect()
    }

    /// The service key (scopes `sessions:read` and `sessions:write`) every node accepts.
    pub fn service_key(&self) -> &str {
        &self.service_key
    }

    /// The Postgres database's URL, if the fleet has one.
    pub fn database_url(&self) -> Option<&str> {
        self.database.as_ref().map(|(_, url)| url.as_str())
    }

    /// The private Redis's URL, if the fleet has one.
    pub fn redis_url(&self) -> Option<String> {
        self.redis.as_ref().map(RedisServer::url)
    }

    /// Kills the nodes and Redis, waiting until each has exited, then drops the database and
    /// removes the data directory.
    pub async fn stop(mut self) -> Result<(), StartError> {
        for node in self.nodes.drain(..) {
            node.stop().await;
        }
        self.redis = None;
        match self.database.take() {
            Some((admin, url)) => db::drop_database(&admin, &url).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_that_cannot_make_one_fleet_is_refused() {
        let postgres = Database::Postgres { admin_url: "postgres://127.0.0.1/postgres".to_owned() };
        let ok = FleetSpec { nodes: 3, database: postgres.clone(), redis: true, ..FleetSpec::single("bin") };
        assert!(ok.check().is_ok());
        assert!(FleetSpec::single("bin").check().is_ok());
        let refused = [
            FleetSpec { nodes: 0, ..FleetSpec::single("bin") },
            FleetSpec { nodes: 2, redis: true, ..FleetSpec::single("bin") },
            FleetSpec { nodes: 2, database: postgres, ..FleetSpec::single("bin") },
            FleetSpec { env: vec![("DATA_DIR".to_owned(), "/tmp".to_owned())], ..FleetSpec::single("bin") },
        ];
        for spec in refused {
            assert!(matches!(spec.check(), Err(StartError::Invalid(_))), "{spec:?}");
        }
    }
}
