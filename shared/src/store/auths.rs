//! Auths in the store. An API key's plaintext never reaches this module's tables: only
//! its digest, prefix and suffix do.

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{PageRequest, Paged, Store, StoreError, StoreResult, bump_version, rows};
use crate::apikey;
use crate::model::{Auth, AuthKind, AuthSpec};
use crate::time::now_rfc3339;

const NAME_TAKEN: &str = "an auth with this name in this gateway";
const COLUMNS: &str =
    "id, gateway_id, key_hash, key_prefix, key_suffix, spec, created_at, updated_at";

/// A created auth and, for API keys, the plaintext key to show once.
#[derive(Debug, Clone)]
pub struct NewAuth {
    pub auth: Auth,
    pub api_key: Option<String>,
}

fn decode(row: &AnyRow) -> StoreResult<Auth> {
    Ok(Auth {
        id: rows::uuid(row, "id", "auth")?,
        gateway_id: rows::uuid(row, "gateway_id", "auth")?,
        spec: rows::spec(row, "auth")?,
        key_hash: row.try_get("key_hash")?,
        key_prefix: row.try_get("key_prefix")?,
        key_suffix: row.try_get("key_suffix")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    pub async fn create_auth(&self, gateway_id: Uuid, spec: &AuthSpec) -> StoreResult<NewAuth> {
        let now = now_rfc3339();
        let id = Uuid::now_v7();
        // Only API-key auths have a key; the others verify tokens or certificates.
        let key = (spec.kind == AuthKind::ApiKey).then(apikey::mint);
        let mut tx = self.pool.begin().await?;
        bump_version(&mut tx, gateway_id, &now).await?;
        sqlx::query(
            "INSERT INTO auths (id, gateway_id, name, kind, key_hash, key_prefix, key_suffix, spec, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(id.to_string())
        .bind(gateway_id.to_string())
        .bind(&spec.name)
        .bind(spec.kind.as_str())
        .bind(key.as_ref().map(|k| k.digest_hex.clone()))
        .bind(key.as_ref().map(|k| k.prefix.clone()))
        .bind(key.as_ref().map(|k| k.suffix.clone()))
        .bind(rows::json(spec))
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_or(e, NAME_TAKEN))?;
        tx.commit().await?;
        Ok(NewAuth {
            auth: self.auth(gateway_id, id).await?,
            api_key: key.map(|k| k.plaintext),
        })
    }

    pub async fn auth(&self, gateway_id: Uuid, id: Uuid) -> StoreResult<Auth> {
        self.one_in_gateway("auths", COLUMNS, "auth", gateway_id, id, decode)
            .await
    }

    pub async fn list_auths(
        &self,
        gateway_id: Uuid,
        page: PageRequest,
    ) -> StoreResult<Paged<Auth>> {
        self.page_in_gateway("auths", COLUMNS, gateway_id, page, decode)
            .await
    }

    /// Every auth of a gateway, for its config document.
    pub async fn gateway_auths(&self, gateway_id: Uuid) -> StoreResult<Vec<Auth>> {
        self.all_in_gateway("auths", COLUMNS, gateway_id, decode)
            .await
    }

    /// Change an auth's name, enabled flag or verification config. Its type and key stay.
    pub async fn update_auth(
        &self,
        gateway_id: Uuid,
        id: Uuid,
        spec: &AuthSpec,
    ) -> StoreResult<Auth> {
        let statement = sqlx::query("UPDATE auths SET name = $1, spec = $2, updated_at = $3 WHERE id = $4 AND gateway_id = $5")
            .bind(spec.name.clone())
            .bind(rows::json(spec))
            .bind(now_rfc3339())
            .bind(id.to_string())
            .bind(gateway_id.to_string());
        self.write_in_gateway(gateway_id, "auth", NAME_TAKEN, statement)
            .await?;
        self.auth(gateway_id, id).await
    }

    /// Replace an API key auth's key; the old key stops working with the next snapshot.
    pub async fn rotate_auth(&self, gateway_id: Uuid, id: Uuid) -> StoreResult<NewAuth> {
        let key = apikey::mint();
        let statement = sqlx::query(
            "UPDATE auths SET key_hash = $1, key_prefix = $2, key_suffix = $3, updated_at = $4 \
             WHERE id = $5 AND gateway_id = $6 AND kind = 'api_key'",
        )
        .bind(key.digest_hex.clone())
        .bind(key.prefix.clone())
        .bind(key.suffix.clone())
        .bind(now_rfc3339())
        .bind(id.to_string())
        .bind(gateway_id.to_string());
        self.write_in_gateway(gateway_id, "API key auth", NAME_TAKEN, statement)
            .await?;
        Ok(NewAuth {
            auth: self.auth(gateway_id, id).await?,
            api_key: Some(key.plaintext),
        })
    }

    pub async fn delete_auth(&self, gateway_id: Uuid, id: Uuid) -> StoreResult<()> {
        self.delete_in_gateway("auths", "auth", gateway_id, id)
            .await
    }
}
