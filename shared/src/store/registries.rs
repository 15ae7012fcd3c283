//! Registries in the store.

use sqlx::AssertSqlSafe;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{PageRequest, Paged, Store, StoreError, StoreResult, bump_version, rows};
use crate::model::{Registry, RegistryKind, RegistrySpec};
use crate::time::now_rfc3339;

const COLUMNS: &str = "id, gateway_id, spec, created_at, updated_at";
const NAME_TAKEN: &str = "a registry with this name in this gateway";

fn decode(row: &AnyRow) -> StoreResult<Registry> {
    Ok(Registry {
        id: rows::uuid(row, "id", "registry")?,
        gateway_id: rows::uuid(row, "gateway_id", "registry")?,
        spec: rows::spec(row, "registry")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn kind(spec: &RegistrySpec) -> &'static str {
    match spec.kind {
        RegistryKind::Llm => "LLM",
        RegistryKind::Mcp => "MCP",
    }
}

impl Store {
    pub async fn create_registry(
        &self,
        gateway_id: Uuid,
        spec: &RegistrySpec,
    ) -> StoreResult<Registry> {
        let id = Uuid::now_v7();
        let statement = sqlx::query(
            "INSERT INTO registries (id, gateway_id, name, kind, spec, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(id.to_string())
        .bind(gateway_id.to_string())
        .bind(spec.name.clone())
        .bind(kind(spec))
        .bind(rows::json(spec))
        .bind(now_rfc3339());
        self.write_in_gateway(gateway_id, "gateway", NAME_TAKEN, statement)
            .await?;
        self.registry(gateway_id, id).await
    }

    pub async fn registry(&self, gateway_id: Uuid, id: Uuid) -> StoreResult<Registry> {
        self.one_in_gateway("registries", COLUMNS, "registry", gateway_id, id, decode)
            .await
    }

    pub async fn list_registries(
        &self,
        gateway_id: Uuid,
        name: Option<&str>,
        kind: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Paged<Registry>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM registries WHERE gateway_id = $1 AND ($2 IS NULL OR name = $2) \
             AND ($5 IS NULL OR kind = $5) ORDER BY created_at, id LIMIT $3 OFFSET $4"
        )))
        .bind(gateway_id.to_string())
        .bind(name.map(str::to_string))
        .bind(i64::from(page.size))
        .bind(page.offset())
        .bind(kind.map(str::to_string))
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM registries WHERE gateway_id = $1 AND ($2 IS NULL OR name = $2) AND ($3 IS NULL OR kind = $3)",
        )
        .bind(gateway_id.to_string())
        .bind(name.map(str::to_string))
        .bind(kind.map(str::to_string))
        .fetch_one(&self.pool)
        .await?;
        Ok(Paged {
            items: rows.iter().map(decode).collect::<StoreResult<_>>()?,
            page: page.page,
            size: page.size,
            total,
        })
    }

    /// Every registry of a gateway, for its config document.
    pub async fn gateway_registries(&self, gateway_id: Uuid) -> StoreResult<Vec<Registry>> {
        self.all_in_gateway("registries", COLUMNS, gateway_id, decode)
            .await
    }

    pub async fn update_registry(
        &self,
        gateway_id: Uuid,
        id: Uuid,
        spec: &RegistrySpec,
    ) -> StoreResult<Registry> {
        let statement = sqlx::query(
            "UPDATE registries SET name = $1, kind = $2, spec = $3, updated_at = $4 WHERE id = $5 AND gateway_id = $6",
        )
        .bind(spec.name.clone())
        .bind(kind(spec))
        .bind(rows::json(spec))
        .bind(now_rfc3339())
        .bind(id.to_string())
        .bind(gateway_id.to_string());
        self.write_in_gateway(gateway_id, "registry", NAME_TAKEN, statement)
            .await?;
        self.registry(gateway_id, id).await
    }

    /// Delete a registry. While consumers or roles still link to it this fails with
    /// [`StoreError::HasDependents`], unless `force` removes the links too.
    pub async fn delete_registry(
        &self,
        gateway_id: Uuid,
        id: Uuid,
        force: bool,
    ) -> StoreResult<()> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        bump_version(&mut tx, gateway_id, &now).await?;
        if !force {
            let count: i64 = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM consumer_registries WHERE registry_id = $1) + \
                        (SELECT COUNT(*) FROM role_registries WHERE registry_id = $1)",
            )
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
            if count > 0 {
                return Err(StoreError::HasDependents {
                    what: "registry",
                    count,
                });
            }
        }
        let done = sqlx::query("DELETE FROM registries WHERE id = $1 AND gateway_id = $2")
            .bind(id.to_string())
            .bind(gateway_id.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("registry"));
        }
        tx.commit().await?;
        Ok(())
    }
}
