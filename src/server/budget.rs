//! Sizing a node's connection limits below the process's file limit: every socket is a file, and a
//! node that runs out of them can no longer accept anything, not even `/healthz`.

/// Connection limits of a node: what the settings ask for, or what fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// HTTP connections not yet upgraded to WebSockets.
    pub http: usize,
    /// Upgraded sockets that have not authenticated yet.
    pub ws_pending: usize,
    /// Authenticated WebSocket connections.
    pub websockets: usize,
}

/// The files a node may open, and how many of them it keeps for itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileBudget {
    /// The process's file limit (soft, after raising it to the hard limit).
    pub limit: u64,
    /// Files kept out of the connection limits: the database pool, Redis connections, the
    /// operator listener, the runtime's own descriptors, the embedded database's files.
    pub reserved: u64,
}

/// Descriptors a node uses besides its client sockets and database pool: stdio, the runtime's
/// epoll and event descriptors, SQLite's database, WAL and shared-memory files, key files read at
/// start, Redis connections (three, or three per shard of a Cluster), and the listeners.
const BASE_RESERVE: u64 = 96;
/// No limit is planned below this, however small the budget: a node that cannot hold a few
/// connections of each kind is useless anyway, and start-up says so.
const FLOOR: usize = 8;

impl FileBudget {
    /// The budget of this process: raises the soft file limit to the hard one (as most servers do
    /// at start) and keeps `extra` files (database pool, operator listener) on top of the base
    /// reserve.
    pub fn of_process(extra: u64) -> std::io::Result<Self> {
        let limit = match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => limit,
            Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE)?.0,
        };
        Ok(Self { limit, reserved: BASE_RESERVE + extra })
    }

    /// Files left for client sockets.
    pub fn available(&self) -> u64 {
        self.limit.saturating_sub(self.reserved)
    }

    /// `wanted`, lowered where the three kinds of socket together would not fit. HTTP
    /// connections and pending WebSockets may each take a tenth of the budget at most (they are
    /// short-lived and evict their oldest idle member when full); authenticated WebSockets get
    /// the rest.
    pub fn plan(&self, wanted: Limits) -> Limits {
        let available = usize::try_from(self.available()).unwrap_or(usize::MAX);
        let share = (available / 10).max(FLOOR);
        let http = wanted.http.min(share);
        let ws_pending = wanted.ws_pending.min(share);
        let websockets = wanted.websockets.min(available.saturating_sub(http + ws_pending).max(FLOOR));
        Limits { http, ws_pending, websockets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Limits = Limits { http: 512, ws_pending: 256, websockets: 20_000 };

    #[test]
    fn at_the_production_file_limit_the_defaults_leave_room_for_19000_websockets() {
        let budget = FileBudget { limit: 20_000, reserved: BASE_RESERVE + 10 + 64 };
        let plan = budget.plan(DEFAULTS);
        assert_eq!((plan.http, plan.ws_pending), (512, 256));
        assert_eq!(plan.websockets, 20_000 - 170 - 512 - 256);
        assert!(plan.websockets >= 19_000);
        let total = (plan.http + plan.ws_pending + plan.websockets) as u64 + budget.reserved;
        assert!(total <= budget.limit);
    }

    #[test]
    fn a_small_file_limit_shrinks_every_limit_and_never_overcommits() {
        let budget = FileBudget { limit: 1_024, reserved: 170 };
        let plan = budget.plan(DEFAULTS);
        assert_eq!(plan.http, 85);
        assert_eq!(plan.ws_pending, 85);
        assert_eq!(plan.websockets, 854 - 170);
        assert!((plan.http + plan.ws_pending + plan.websockets) as u64 + budget.reserved <= budget.limit);
    }

    #[test]
    fn limits_that_fit_are_kept() {
        let budget = FileBudget { limit: 1_000_000, reserved: 170 };
        assert_eq!(budget.plan(DEFAULTS), DEFAULTS);
    }

    #[test]
    fn this_process_has_a_budget() {
        let budget = FileBudget::of_process(10).unwrap();
        assert!(budget.limit > budget.reserved);
    }
}
