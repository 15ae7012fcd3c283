//! What every object table under a gateway shares: a write to one object runs in a
//! transaction that bumps the gateway's version, and a listing is a page plus the total.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe};
use uuid::Uuid;

use super::{PageRequest, Paged, Store, StoreError, StoreResult, bump_version};
use crate::time::now_rfc3339;

/// A prepared statement over one object.
pub(super) type Statement<'q> = Query<'q, Any, AnyArguments>;

impl Store {
    /// Run `statement` (an UPDATE or DELETE of one object of `gateway_id`) in a
    /// transaction that bumps the gateway's version. Touching no row is
    /// `NotFound(what)`; a unique violation is a conflict named by `taken`.
    pub(super) async fn write_in_gateway(
        &self,
        gateway_id: Uuid,
        what: &'static str,
        taken: &str,
        statement: Statement<'_>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        bump_version(&mut tx, gateway_id, &now_rfc3339()).await?;
        let done = statement
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_or(e, taken))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(what));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Delete object `id` of `gateway_id` from `table` (a constant table name).
    pub(super) async fn delete_in_gateway(
        &self,
        table: &'static str,
        what: &'static str,
        gateway_id: Uuid,
        id: Uuid,
    ) -> StoreResult<()> {
        let statement = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE id = $1 AND gateway_id = $2"
        )))
        .bind(id.to_string())
        .bind(gateway_id.to_string());
        self.write_in_gateway(gateway_id, what, what, statement)
            .await
    }

    /// Object `id` of `gateway_id` in `table`.
    pub(super) async fn one_in_gateway<T>(
        &self,
        table: &'static str,
        columns: &'static str,
        what: &'static str,
        gateway_id: Uuid,
        id: Uuid,
        decode: impl Fn(&AnyRow) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {columns} FROM {table} WHERE id = $1 AND gateway_id = $2"
        )))
        .bind(id.to_string())
        .bind(gateway_id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound(what))?;
        decode(&row)
    }

    /// One page of the objects of `gateway_id` in `table`, oldest first, and their total.
    pub(super) async fn page_in_gateway<T>(
        &self,
        table: &'static str,
        columns: &'static str,
        gateway_id: Uuid,
        page: PageRequest,
        decode: impl Fn(&AnyRow) -> StoreResult<T>,
    ) -> StoreResult<Paged<T>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {columns} FROM {table} WHERE gateway_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3"
        )))
        .bind(gateway_id.to_string())
        .bind(i64::from(page.size))
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {table} WHERE gateway_id = $1"
        )))
        .bind(gateway_id.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(Paged {
            items: rows.iter().map(decode).collect::<StoreResult<_>>()?,
            page: page.page,
            size: page.size,
            total,
        })
    }

    /// Every object of `gateway_id` in `table`, oldest first, for its config document.
    pub(super) async fn all_in_gateway<T>(
        &self,
        table: &'static str,
        columns: &'static str,
        gateway_id: Uuid,
        decode: impl Fn(&AnyRow) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {columns} FROM {table} WHERE gateway_id = $1 ORDER BY created_at, id"
        )))
        .bind(gateway_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }
}
