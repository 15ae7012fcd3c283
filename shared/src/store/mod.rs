//! The config store: the source of truth for every object, in SQLite (embedded default)
//! or PostgreSQL (`DATABASE_URL`). Only the admin plane talks to it; the proxy and mcp
//! planes read config documents from the bus and never touch the database.
//!
//! Both backends run through sqlx's `Any` driver with one set of queries: ids, names and
//! timestamps are text, everything else of an object is a JSON `spec` column. Every
//! change to an object bumps its gateway's `version` in the same transaction, which is
//! how the proxy knows a gateway's compiled config is stale.

mod admin_tokens;
mod auths;
mod consumers;
mod documents;
mod gateways;
mod objects;
mod policies;
mod registries;
mod roles;
mod rows;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use thiserror::Error;
use uuid::Uuid;

pub use admin_tokens::AdminToken;
pub use auths::NewAuth;
pub use consumers::ConsumerFilter;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a store operation can fail with.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{what} is still used by {count} other object(s)")]
    HasDependents { what: &'static str, count: i64 },
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("unsupported store URL scheme: {0}")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare the data dir: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// Turn a unique-constraint violation into a conflict that names what collided.
    fn conflict_or(err: sqlx::Error, what: &str) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict(format!("{what} already exists"))
            }
            _ => Self::Database(err),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One page of a listing. Pages count from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub size: u32,
}

impl PageRequest {
    fn offset(self) -> i64 {
        i64::from(self.page.saturating_sub(1)) * i64::from(self.size)
    }
}

/// A page of results with the total count of the listing.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// The page number, from 1.
    pub page: u32,
    /// The page size asked for (1 to 200).
    pub size: u32,
    /// How many items the whole listing holds.
    pub total: i64,
}

/// A connection pool to the config store.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// Connect to the store at `url` (`sqlite://…` or `postgres://…`). A SQLite file's
    /// directory is created when missing.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(StoreError::UnsupportedUrl(scheme.to_string()));
        };
        if backend == Backend::Sqlite
            && let Some(path) = sqlite_path(url)
            && let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let options = AnyConnectOptions::from_str(url)?;
        let mut pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            // WAL lets readers run beside the writer; the busy timeout makes a second
            // writer wait instead of failing; foreign keys make the cascades real.
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options).await?;
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Apply the migrations of this backend that have not run yet.
    pub async fn migrate(&self) -> StoreResult<()> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("../migrations/sqlite")
                    .run(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("../migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    /// A cheap round trip, for readiness probes.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Bump a gateway's config version inside the caller's transaction. Every mutation of
/// anything under a gateway calls this, so the version orders its documents.
async fn bump_version(
    conn: &mut sqlx::AnyConnection,
    gateway_id: Uuid,
    now: &str,
) -> StoreResult<i64> {
    let row: Option<(i64,)> = sqlx::query_as(
        "UPDATE gateways SET version = version + 1, updated_at = $1 WHERE id = $2 RETURNING version",
    )
    .bind(now)
    .bind(gateway_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|(v,)| v).ok_or(StoreError::NotFound("gateway"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://data/x.db?mode=rwc"),
            Some("data/x.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
