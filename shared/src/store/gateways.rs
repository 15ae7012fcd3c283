//! Gateways in the store.

use sqlx::AssertSqlSafe;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{PageRequest, Paged, Store, StoreError, StoreResult, rows};
use crate::model::{Gateway, GatewaySpec};
use crate::time::now_rfc3339;

const COLUMNS: &str = "id, spec, version, created_at, updated_at";

fn decode(row: &AnyRow) -> StoreResult<Gateway> {
    Ok(Gateway {
        id: rows::uuid(row, "id", "gateway")?,
        spec: rows::spec(row, "gateway")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    pub async fn create_gateway(&self, spec: &GatewaySpec) -> StoreResult<Gateway> {
        let now = now_rfc3339();
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO gateways (id, slug, domain, spec, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 1, $5, $5)",
        )
        .bind(id.to_string())
        .bind(&spec.slug)
        .bind(spec.domain.clone())
        .bind(rows::json(spec))
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::conflict_or(e, "a gateway with this slug or domain"))?;
        self.gateway(id).await
    }

    pub async fn gateway(&self, id: Uuid) -> StoreResult<Gateway> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM gateways WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("gateway"))?;
        decode(&row)
    }

    /// Gateways ordered by creation, optionally only the one with `slug`.
    pub async fn list_gateways(
        &self,
        slug: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Paged<Gateway>> {
        let filter = if slug.is_some() {
            "WHERE slug = $3"
        } else {
            "WHERE $3 IS NULL"
        };
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM gateways {filter} ORDER BY created_at, id LIMIT $1 OFFSET $2"
        )))
        .bind(i64::from(page.size))
        .bind(page.offset())
        .bind(slug.map(str::to_string))
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM gateways {}",
            filter.replace("$3", "$1")
        )))
        .bind(slug.map(str::to_string))
        .fetch_one(&self.pool)
        .await?;
        Ok(Paged {
            items: rows.iter().map(decode).collect::<StoreResult<_>>()?,
            page: page.page,
            size: page.size,
            total,
        })
    }

    pub async fn update_gateway(&self, id: Uuid, spec: &GatewaySpec) -> StoreResult<Gateway> {
        let now = now_rfc3339();
        let done = sqlx::query(
            "UPDATE gateways SET slug = $1, domain = $2, spec = $3, version = version + 1, \
             updated_at = $4 WHERE id = $5",
        )
        .bind(&spec.slug)
        .bind(spec.domain.clone())
        .bind(rows::json(spec))
        .bind(&now)
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::conflict_or(e, "a gateway with this slug or domain"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("gateway"));
        }
        self.gateway(id).await
    }

    /// Delete a gateway and, by cascade, everything under it.
    pub async fn delete_gateway(&self, id: Uuid) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM gateways WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("gateway"));
        }
        Ok(())
    }

    /// Every gateway id, for republishing all documents.
    pub async fn gateway_ids(&self) -> StoreResult<Vec<Uuid>> {
        let rows = sqlx::query("SELECT id FROM gateways ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| rows::uuid(r, "id", "gateway"))
            .collect()
    }
}
