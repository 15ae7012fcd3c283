//! Roles and their registry links in the store.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use super::{PageRequest, Paged, Store, StoreError, StoreResult, bump_version, rows};
use crate::model::{Role, RoleSpec};
use crate::time::now_rfc3339;

const COLUMNS: &str = "id, gateway_id, spec, created_at, updated_at";
const NAME_TAKEN: &str = "a role with this name in this gateway";

fn decode(row: &AnyRow) -> StoreResult<Role> {
    Ok(Role {
        id: rows::uuid(row, "id", "role")?,
        gateway_id: rows::uuid(row, "gateway_id", "role")?,
        spec: rows::spec(row, "role")?,
        registry_ids: Vec::new(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Roles of a gateway selected by `filter` (`$1` is the gateway id, `$2` an optional
    /// role id), with their registry links.
    async fn roles_where(
        &self,
        gateway_id: Uuid,
        only: Option<Uuid>,
        page: Option<PageRequest>,
    ) -> StoreResult<Vec<Role>> {
        let paging = match page {
            Some(p) => format!("LIMIT {} OFFSET {}", p.size, p.offset()),
            None => String::new(),
        };
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM roles WHERE gateway_id = $1 AND ($2 IS NULL OR id = $2) \
             ORDER BY created_at, id {paging}"
        )))
        .bind(gateway_id.to_string())
        .bind(only.map(|id| id.to_string()))
        .fetch_all(&self.pool)
        .await?;
        let mut roles = rows.iter().map(decode).collect::<StoreResult<Vec<_>>>()?;
        let index: HashMap<Uuid, usize> =
            roles.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        let links = sqlx::query(
            "SELECT l.role_id, l.registry_id FROM role_registries l JOIN roles r ON r.id = l.role_id \
             WHERE r.gateway_id = $1 ORDER BY l.position",
        )
        .bind(gateway_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        for link in links {
            let role = rows::uuid(&link, "role_id", "role link")?;
            if let Some(&i) = index.get(&role) {
                roles[i]
                    .registry_ids
                    .push(rows::uuid(&link, "registry_id", "role link")?);
            }
        }
        Ok(roles)
    }

    pub async fn create_role(&self, gateway_id: Uuid, spec: &RoleSpec) -> StoreResult<Role> {
        let id = Uuid::now_v7();
        let statement =
            sqlx::query("INSERT INTO roles (id, gateway_id, name, spec, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
                .bind(id.to_string())
                .bind(gateway_id.to_string())
                .bind(spec.name.clone())
                .bind(rows::json(spec))
                .bind(now_rfc3339());
        self.write_in_gateway(gateway_id, "gateway", NAME_TAKEN, statement)
            .await?;
        self.role(gateway_id, id).await
    }

    pub async fn role(&self, gateway_id: Uuid, id: Uuid) -> StoreResult<Role> {
        self.roles_where(gateway_id, Some(id), None)
            .await?
            .pop()
            .ok_or(StoreError::NotFound("role"))
    }

    pub async fn list_roles(
        &self,
        gateway_id: Uuid,
        page: PageRequest,
    ) -> StoreResult<Paged<Role>> {
        let items = self.roles_where(gateway_id, None, Some(page)).await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM roles WHERE gateway_id = $1")
            .bind(gateway_id.to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(Paged {
            items,
            page: page.page,
            size: page.size,
            total,
        })
    }

    /// Every role of a gateway, for its config document.
    pub async fn gateway_roles(&self, gateway_id: Uuid) -> StoreResult<Vec<Role>> {
        self.roles_where(gateway_id, None, None).await
    }

    pub async fn update_role(
        &self,
        gateway_id: Uuid,
        id: Uuid,
        spec: &RoleSpec,
    ) -> StoreResult<Role> {
        let statement = sqlx::query("UPDATE roles SET name = $1, spec = $2, updated_at = $3 WHERE id = $4 AND gateway_id = $5")
            .bind(spec.name.clone())
            .bind(rows::json(spec))
            .bind(now_rfc3339())
            .bind(id.to_string())
            .bind(gateway_id.to_string());
        self.write_in_gateway(gateway_id, "role", NAME_TAKEN, statement)
            .await?;
        self.role(gateway_id, id).await
    }

    pub async fn delete_role(&self, gateway_id: Uuid, id: Uuid) -> StoreResult<()> {
        self.delete_in_gateway("roles", "role", gateway_id, id)
            .await
    }

    /// Link a registry of the same gateway to a role (idempotent).
    pub async fn attach_role_registry(
        &self,
        gateway_id: Uuid,
        role_id: Uuid,
        registry_id: Uuid,
    ) -> StoreResult<Role> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        bump_version(&mut tx, gateway_id, &now).await?;
        for (table, what, id) in [
            ("roles", "role", role_id),
            ("registries", "registry", registry_id),
        ] {
            let found: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM {table} WHERE id = $1 AND gateway_id = $2"
            )))
            .bind(id.to_string())
            .bind(gateway_id.to_string())
            .fetch_one(&mut *tx)
            .await?;
            if found == 0 {
                return Err(StoreError::NotFound(what));
            }
        }
        sqlx::query(
            "INSERT INTO role_registries (role_id, registry_id, position) VALUES ($1, $2, \
             (SELECT COALESCE(MAX(position), 0) + 1 FROM role_registries WHERE role_id = $1)) \
             ON CONFLICT (role_id, registry_id) DO NOTHING",
        )
        .bind(role_id.to_string())
        .bind(registry_id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.role(gateway_id, role_id).await
    }

    pub async fn detach_role_registry(
        &self,
        gateway_id: Uuid,
        role_id: Uuid,
        registry_id: Uuid,
    ) -> StoreResult<Role> {
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        bump_version(&mut tx, gateway_id, &now).await?;
        let done = sqlx::query(
            "DELETE FROM role_registries WHERE role_id = $1 AND registry_id = $2 \
             AND role_id IN (SELECT id FROM roles WHERE gateway_id = $3)",
        )
        .bind(role_id.to_string())
        .bind(registry_id.to_string())
        .bind(gateway_id.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("registry link"));
        }
        tx.commit().await?;
        self.role(gateway_id, role_id).await
    }
}
