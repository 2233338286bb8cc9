//! What sqlx errors mean to callers. Both backends translate every driver error here, so handlers
//! only ever see [`StoreError`] and never a sqlx type.

use sqlx::error::DatabaseError;
use sqlx::migrate::MigrateError;

use crate::session::store::{Cause, StoreError};

/// Translates a sqlx error. `transient` says which database-reported errors are worth retrying
/// (the codes differ per engine); those become [`StoreError::Unavailable`].
pub(crate) fn translate(e: sqlx::Error, transient: fn(&dyn DatabaseError) -> bool) -> StoreError {
    use sqlx::Error as E;
    match e {
        E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Io(_) | E::Tls(_) => StoreError::Unavailable(e.into()),
        E::Database(db) if db.is_unique_violation() => StoreError::Conflict(db.message().to_owned()),
        E::Database(db) if transient(db.as_ref()) => StoreError::Unavailable(E::Database(db).into()),
        E::ColumnDecode { .. }
        | E::Decode(_)
        | E::ColumnNotFound(_)
        | E::ColumnIndexOutOfBounds { .. }
        | E::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
        E::Migrate(m) => migration(*m, transient),
        other => StoreError::Backend(other.into()),
    }
}

/// Translates a failed migration run: a database that went away is unavailable, anything else
/// (a changed or missing migration, bad SQL) is a deployment problem.
pub(crate) fn migration(e: MigrateError, transient: fn(&dyn DatabaseError) -> bool) -> StoreError {
    match e {
        MigrateError::Execute(inner) => translate(inner, transient),
        other => StoreError::Backend(Box::new(Context::new("migration failed", other))),
    }
}

/// A driver error with what we were doing when it happened; the driver error stays its source.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub(crate) struct Context {
    context: String,
    #[source]
    source: Cause,
}

impl Context {
    pub(crate) fn new(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        Self { context: context.into(), source: source.into() }
    }
}

/// A stored value that the domain cannot represent (unknown status, invalid JSON, ...).
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}
