//! Consumers and their links to registries and auths in the store.

use std::collections::HashMap;

use rand::Rng;
use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::{PageRequest, Paged, Store, StoreError, StoreResult, bump_version, rows};
use crate::model::{Consumer, ConsumerKind, ConsumerSpec, RegistryLink, slugify};

/// Which consumers a listing returns.
#[derive(Debug, Clone, Default)]
pub struct ConsumerFilter {
    /// Part of the name.
    pub search: Option<String>,
    /// `LLM`, `MCP` or `A2A`.
    pub kind: Option<String>,
    pub active: Option<bool>,
    /// Only consumers this auth is attached to.
    pub auth_id: Option<Uuid>,
}

const FILTER: &str = "gateway_id = $1 AND ($2 IS NULL OR name LIKE $2) AND ($3 IS NULL OR kind = $3) \
     AND ($4 IS NULL OR active = $4) \
     AND ($5 IS NULL OR id IN (SELECT consumer_id FROM consumer_auths WHERE auth_id = $5))";
use crate::time::now_rfc3339;

const COLUMNS: &str = "id, gateway_id, slug, spec, created_at, updated_at";

fn decode(row: &AnyRow) -> StoreResult<Consumer> {
    Ok(Consumer {
        id: rows::uuid(row, "id", "consumer")?,
        gateway_id: rows::uuid(row, "gateway_id", "consumer")?,
        slug: row.try_get("slug")?,
        spec: rows::spec(row, "consumer")?,
        registries: Vec::new(),
        auth_ids: Vec::new(),
        policy_ids: Vec::new(),
        role_ids: Vec::new(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn kind(spec: &ConsumerSpec) -> &'static str {
    match spec.kind {
        ConsumerKind::Llm => "LLM",
        ConsumerKind::Mcp => "MCP",
        ConsumerKind::A2a => "A2A",
    }
}

/// The link tables of a consumer, with the column that names the other end.
const LINKS: [(&str, &str); 4] = [
    ("consumer_registries", "registry_id"),
    ("consumer_auths", "auth_id"),
    ("consumer_policies", "policy_id"),
    ("consumer_roles", "role_id"),
];

/// Fill in the links of `consumers`, selected by `scope` (a SQL condition on the
/// consumers table aliased `c`, with its binds given as `binds`).
async fn attach_links(
    conn: &mut AnyConnection,
    consumers: &mut [Consumer],
    scope: &str,
    binds: &[String],
) -> StoreResult<()> {
    let index: HashMap<Uuid, usize> = consumers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i))
        .collect();
    for (table, other) in LINKS {
        let weight = if table == "consumer_registries" {
            "l.weight"
        } else {
            "1"
        };
        let sql = format!(
            "SELECT l.consumer_id, l.{other} AS other, {weight} AS weight FROM {table} l \
             JOIN consumers c ON c.id = l.consumer_id WHERE {scope} ORDER BY l.position"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql.as_str()));
        for b in binds {
            query = query.bind(b.clone());
        }
        for row in query.fetch_all(&mut *conn).await? {
            let consumer_id = rows::uuid(&row, "consumer_id", "consumer link")?;
            let other_id = rows::uuid(&row, "other", "consumer link")?;
            let Some(&i) = index.get(&consumer_id) else {
                continue;
            };
            let c = &mut consumers[i];
            match table {
                "consumer_registries" => {
                    let weight: i64 = row.try_get("weight")?;
                    c.registries.push(RegistryLink {
                        registry_id: other_id,
                        weight: u8::try_from(weight.clamp(1, 100)).unwrap_or(1),
                    });
                }
                "consumer_auths" => c.auth_ids.push(other_id),
                "consumer_policies" => c.policy_ids.push(other_id),
                _ => c.role_ids.push(other_id),
            }
        }
    }
    Ok(())
}

impl Store {
    /// Create a consumer with a server-generated slug: the slug of its name, with a short
    /// random suffix when that is taken in the gateway.
    pub async fn create_consumer(
        &self,
        gateway_id: Uuid,
        spec: &ConsumerSpec,
    ) -> StoreResult<Consumer> {
        let now = now_rfc3339();
        let id = Uuid::now_v7();
        let base = slugify(&spec.name);
        let mut tx = self.pool.begin().await?;
        bump_version(&mut tx, gateway_id, &now).await?;
        let taken: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM consumers WHERE gateway_id = $1 AND slug = $2",
        )
        .bind(gateway_id.to_string())
        .bind(&base)
        .fetch_one(&mut *tx)
        .await?;
        let slug = if taken == 0 {
            base
        } else {
            let suffix: u32 = rand::rng().random_range(0..0x100_0000);
            format!("{base}-{suffix:06x}")
        };
        sqlx::query(
            "INSERT INTO consumers (id, gateway_id, name, slug, kind, spec, created_at, updated_at, active) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
        )
        .bind(id.to_string())
        .bind(gateway_id.to_string())
        .bind(&spec.name)
        .bind(&slug)
        .bind(kind(spec))
                .bind(rows::json(spec))
        .bind(&now)
        .bind(i64::from(spec.active))
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_or(e, "a consumer with this name in this gateway"))?;
        tx.commit().await?;
        self.consumer(gateway_id, id).await
    }

    pub async fn consumer(&self, gateway_id: Uuid, id: Uuid) -> StoreResult<Consumer> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM consumers WHERE id = $1 AND gateway_id = $2"
        )))
        .bind(id.to_string())
        .bind(gateway_id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound("consumer"))?;
        let mut consumers = vec![decode(&row)?];
        attach_links(&mut conn, &mut consumers, "c.id = $1", &[id.to_string()]).await?;
        Ok(consumers.remove(0))
    }

    /// Consumers of a gateway that pass `filter`.
    pub async fn list_consumers(
        &self,
        gateway_id: Uuid,
        filter: &ConsumerFilter,
        page: PageRequest,
    ) -> StoreResult<Paged<Consumer>> {
        let mut conn = self.pool.acquire().await?;
        let pattern = filter
            .search
            .as_ref()
            .map(|s| format!("%{}%", s.replace(['%', '_'], "")));
        let binds = |q: sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>| {
            q.bind(gateway_id.to_string())
                .bind(pattern.clone())
                .bind(filter.kind.clone())
                .bind(filter.active.map(i64::from))
                .bind(filter.auth_id.map(|id| id.to_string()))
        };
        let rows = binds(sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM consumers WHERE {FILTER} ORDER BY created_at, id LIMIT $6 OFFSET $7"
        ))))
        .bind(i64::from(page.size))
        .bind(page.offset())
        .fetch_all(&mut *conn)
        .await?;
        let mut items = rows.iter().map(decode).collect::<StoreResult<Vec<_>>>()?;
        attach_links(
            &mut conn,
            &mut items,
            "c.gateway_id = $1",
            &[gateway_id.to_string()],
        )
        .await?;
        let total: i64 = binds(sqlx::query(AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM consumers WHERE {FILTER}"
        ))))
        .fetch_one(&mut *conn)
        .await?
        .try_get("n")?;
        Ok(Paged {
            items,
            page: page.page,
            size: page.size,
            total,
        })
    }

    /// Every consumer of a gateway with its links, for its config document.
    pub async fn gateway_consumers(&self, gateway_id: Uuid) -> StoreResult<Vec<Consumer>> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM consumers WHERE gateway_id = $1 ORDER BY created_at, id"
        )))
        .bind(gateway_id.to_string())
        .fetch_all(&mut *conn)
        .await?;
        let mut consumers = rows.iter().map(decode).collect::<StoreResult<Vec<_>>>()?;
        attach_links(
            &mut conn,
            &mut consumers,
            "c.gateway_id = $1",
            &[gateway_id.to_string()],
        )
        .await?;
        Ok(consumers)
    }

    pub async fn update_consumer(
        &self,
        gateway_id: Uuid,
        id: Uuid,
        spec: &ConsumerSpec,
    ) -> StoreResult<Consumer> {
        let statement = sqlx::query(
            "UPDATE consumers SET name = $1, kind = $2, spec = $3, updated_at = $4, active = $7 \
             WHERE id = $5 AND gateway_id = $6",
        )
        .bind(spec.name.clone())
        .bind(kind(spec))
        .bind(rows::json(spec))
        .bind(now_rfc3339())
        .bind(id.to_string())
        .bind(gateway_id.to_string())
        .bind(i64::from(spec.active));
        self.write_in_gateway(
            gateway_id,
            "consumer",
            "a consumer with this name in this gateway",
            statement,
        )
        .await?;
        self.consumer(gateway_id, id).await
    }

    pub async fn delete_consumer(&self, gateway_id: Uuid, id: Uuid) -> StoreResult<()> {
        self.delete_in_gateway("consumers", "consumer", gateway_id, id)
            .await
    }

    /// Attach (`attach = true`) or detach a policy or role (`other`: `"policies"` or
    /// `"roles"`) to a consumer.
    pub async fn link_consumer(
        &self,
        gateway_id: Uuid,
        consumer_id: Uuid,
        other: &'static str,
        other_id: Uuid,
        attach: bool,
    ) -> StoreResult<Consumer> {
        if attach {
            self.link(gateway_id, consumer_id, other, other_id, None)
                .await
        } else {
            self.unlink(gateway_id, consumer_id, other, other_id).await
        }
    }

    /// Attach a registry to a consumer with a weight, or change the weight of an existing
    /// link. Both must belong to the gateway.
    pub async fn attach_registry(
        &self,
        gateway_id: Uuid,
        consumer_id: Uuid,
        registry_id: Uuid,
        weight: u8,
    ) -> StoreResult<Consumer> {
        self.link(
            gateway_id,
            consumer_id,
            "registries",
            registry_id,
            Some(weight),
        )
        .await
    }

    pub async fn detach_registry(
        &self,
        gateway_id: Uuid,
        consumer_id: Uuid,
        registry_id: Uuid,
    ) -> StoreResult<Consumer> {
        self.unlink(gateway_id, consumer_id, "registries", registry_id)
            .await
    }

    pub async fn attach_auth(
        &self,
        gateway_id: Uuid,
        consumer_id: Uuid,
        auth_id: Uuid,
    ) -> StoreResult<Consumer> {
        self.link(gateway_id, consumer_id, "auths", auth_id, None)
            .await
    }

    pub async fn detach_auth(
        &self,
        gateway_id: Uuid,
        consumer_id: Uuid,
        auth_id: Uuid,
    ) -> StoreResult<Consumer> {
        self.unlink(gateway_id, consumer_id, "auths", auth_id).await
    }

    async fn link(
        &self,
        gateway_id: Uuid,
        consumer_id: Uuid,
        other: &'static str,
        other_id: Uuid,
        weight: Option<u8>,
    ) -> StoreResult<Consumer> {
        let (table, column, what) = link_table(other);
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        bump_version(&mut tx, gateway_id, &now).await?;
        ensure_in_gateway(&mut tx, "consumers", "consumer", consumer_id, gateway_id).await?;
        ensure_in_gateway(&mut tx, other, what, other_id, gateway_id).await?;
        let (weight_col, weight_val, on_conflict) = match weight {
            Some(_) => (", weight", ", $3", "DO UPDATE SET weight = excluded.weight"),
            None => ("", "", "DO NOTHING"),
        };
        let sql = format!(
            "INSERT INTO {table} (consumer_id, {column}, position{weight_col}) \
             VALUES ($1, $2, (SELECT COALESCE(MAX(position), 0) + 1 FROM {table} WHERE consumer_id = $1){weight_val}) \
             ON CONFLICT (consumer_id, {column}) {on_conflict}"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(consumer_id.to_string())
            .bind(other_id.to_string());
        if let Some(w) = weight {
            query = query.bind(i64::from(w));
        }
        query.execute(&mut *tx).await?;
        tx.commit().await?;
        self.consumer(gateway_id, consumer_id).await
    }

    async fn unlink(
        &self,
        gateway_id: Uuid,
        consumer_id: Uuid,
        other: &'static str,
        other_id: Uuid,
    ) -> StoreResult<Consumer> {
        let (table, column, what) = link_table(other);
        let now = now_rfc3339();
        let mut tx = self.pool.begin().await?;
        bump_version(&mut tx, gateway_id, &now).await?;
        ensure_in_gateway(&mut tx, "consumers", "consumer", consumer_id, gateway_id).await?;
        let done = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE consumer_id = $1 AND {column} = $2"
        )))
        .bind(consumer_id.to_string())
        .bind(other_id.to_string())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(what));
        }
        tx.commit().await?;
        self.consumer(gateway_id, consumer_id).await
    }
}

fn link_table(other: &'static str) -> (&'static str, &'static str, &'static str) {
    match other {
        "registries" => ("consumer_registries", "registry_id", "registry"),
        "auths" => ("consumer_auths", "auth_id", "auth"),
        "policies" => ("consumer_policies", "policy_id", "policy"),
        _ => ("consumer_roles", "role_id", "role"),
    }
}

async fn ensure_in_gateway(
    conn: &mut AnyConnection,
    table: &'static str,
    what: &'static str,
    id: Uuid,
    gateway_id: Uuid,
) -> StoreResult<()> {
    let found: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {table} WHERE id = $1 AND gateway_id = $2"
    )))
    .bind(id.to_string())
    .bind(gateway_id.to_string())
    .fetch_one(&mut *conn)
    .await?;
    if found == 0 {
        return Err(StoreError::NotFound(what));
    }
    Ok(())
}
