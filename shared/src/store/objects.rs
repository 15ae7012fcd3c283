//! What every object table under a gateway shares: deleting one object bumps the
//! gateway's version in the same transaction.

use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{Store, StoreError, StoreResult, bump_version};
use crate::time::now_rfc3339;

impl Store {
    /// Delete object `id` of `gateway_id` from `table` (a constant table name).
    pub(super) async fn delete_in_gateway(
        &self,
        table: &'static str,
        what: &'static str,
        gateway_id: Uuid,
        id: Uuid,
    ) -> StoreResult<()> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        bump_version(&mut tx, gateway_id, &now).await?;
        let done = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE id = $1 AND gateway_id = $2"
        )))
        .bind(id.to_string())
        .bind(gateway_id.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(what));
        }
        tx.commit().await?;
        Ok(())
    }
}
