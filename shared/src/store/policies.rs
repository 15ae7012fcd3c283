//! Policies in the store.

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{PageRequest, Paged, Store, StoreError, StoreResult, rows};
use crate::model::{Policy, PolicySpec};
use crate::time::now_rfc3339;

const COLUMNS: &str = "id, gateway_id, global_scope, spec, created_at, updated_at";
const NAME_TAKEN: &str = "a policy with this name in this gateway";

fn decode(row: &AnyRow) -> StoreResult<Policy> {
    let global: i64 = row.try_get("global_scope")?;
    Ok(Policy {
        id: rows::uuid(row, "id", "policy")?,
        gateway_id: rows::uuid(row, "gateway_id", "policy")?,
        spec: rows::spec(row, "policy")?,
        global: global != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    pub async fn create_policy(&self, gateway_id: Uuid, spec: &PolicySpec) -> StoreResult<Policy> {
        let id = Uuid::now_v7();
        let statement = sqlx::query(
            "INSERT INTO policies (id, gateway_id, name, kind, spec, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(id.to_string())
        .bind(gateway_id.to_string())
        .bind(spec.name.clone())
        .bind(spec.slug.clone())
        .bind(rows::json(spec))
        .bind(now_rfc3339());
        self.write_in_gateway(gateway_id, "gateway", NAME_TAKEN, statement)
            .await?;
        self.policy(gateway_id, id).await
    }

    pub async fn policy(&self, gateway_id: Uuid, id: Uuid) -> StoreResult<Policy> {
        self.one_in_gateway("policies", COLUMNS, "policy", gateway_id, id, decode)
            .await
    }

    pub async fn list_policies(
        &self,
        gateway_id: Uuid,
        page: PageRequest,
    ) -> StoreResult<Paged<Policy>> {
        self.page_in_gateway("policies", COLUMNS, gateway_id, page, decode)
            .await
    }

    /// Every policy of a gateway, for its config document.
    pub async fn gateway_policies(&self, gateway_id: Uuid) -> StoreResult<Vec<Policy>> {
        self.all_in_gateway("policies", COLUMNS, gateway_id, decode)
            .await
    }

    pub async fn update_policy(
        &self,
        gateway_id: Uuid,
        id: Uuid,
        spec: &PolicySpec,
    ) -> StoreResult<Policy> {
        let statement = sqlx::query(
            "UPDATE policies SET name = $1, kind = $2, spec = $3, updated_at = $4 WHERE id = $5 AND gateway_id = $6",
        )
        .bind(spec.name.clone())
        .bind(spec.slug.clone())
        .bind(rows::json(spec))
        .bind(now_rfc3339())
        .bind(id.to_string())
        .bind(gateway_id.to_string());
        self.write_in_gateway(gateway_id, "policy", NAME_TAKEN, statement)
            .await?;
        self.policy(gateway_id, id).await
    }

    /// Make a policy apply to every consumer of its gateway, or stop that.
    pub async fn set_policy_global(
        &self,
        gateway_id: Uuid,
        id: Uuid,
        global: bool,
    ) -> StoreResult<Policy> {
        let statement = sqlx::query("UPDATE policies SET global_scope = $1, updated_at = $2 WHERE id = $3 AND gateway_id = $4")
            .bind(i64::from(global))
            .bind(now_rfc3339())
            .bind(id.to_string())
            .bind(gateway_id.to_string());
        self.write_in_gateway(gateway_id, "policy", NAME_TAKEN, statement)
            .await?;
        self.policy(gateway_id, id).await
    }

    /// A copy of a policy under a new name (`<name> (copy)`, numbered when taken); the
    /// copy is attached to no consumer and not global.
    pub async fn duplicate_policy(&self, gateway_id: Uuid, id: Uuid) -> StoreResult<Policy> {
        let original = self.policy(gateway_id, id).await?;
        let mut spec = original.spec.clone();
        for n in 1..=100 {
            spec.name = if n == 1 {
                format!("{} (copy)", original.spec.name)
            } else {
                format!("{} (copy {n})", original.spec.name)
            };
            match self.create_policy(gateway_id, &spec).await {
                Err(StoreError::Conflict(_)) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict(NAME_TAKEN.to_string()))
    }

    pub async fn delete_policy(&self, gateway_id: Uuid, id: Uuid) -> StoreResult<()> {
        self.delete_in_gateway("policies", "policy", gateway_id, id)
            .await
    }
}
