//! Scoped admin tokens in the store: a token bound to one gateway, with scopes such as
//! `registries:read` or `consumers:write`. Only the token's digest is kept.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Store, StoreError, StoreResult, rows};
use crate::apikey;
use crate::time::now_rfc3339;

/// A scoped admin token as stored and listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminToken {
    pub id: Uuid,
    pub name: String,
    pub gateway_id: Uuid,
    pub scopes: Vec<String>,
    pub created_at: String,
}

fn decode(row: &AnyRow) -> StoreResult<AdminToken> {
    let scopes: String = row.try_get("scopes")?;
    Ok(AdminToken {
        id: rows::uuid(row, "id", "admin token")?,
        name: row.try_get("name")?,
        gateway_id: rows::uuid(row, "gateway_id", "admin token")?,
        scopes: serde_json::from_str(&scopes).map_err(|e| StoreError::Corrupt {
            what: "admin token",
            reason: e.to_string(),
        })?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Store a new scoped token and return it with its plaintext, shown once.
    pub async fn create_admin_token(
        &self,
        name: &str,
        gateway_id: Uuid,
        scopes: &[String],
    ) -> StoreResult<(AdminToken, String)> {
        self.gateway(gateway_id).await?;
        let id = Uuid::now_v7();
        let minted = apikey::mint();
        // Scoped admin tokens carry their own prefix so they are not mistaken for API keys.
        let token = format!("sls_{}", &minted.plaintext[apikey::KEY_PREFIX.len()..]);
        sqlx::query(
            "INSERT INTO admin_tokens (id, name, gateway_id, scopes, token_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.to_string())
        .bind(name)
        .bind(gateway_id.to_string())
        .bind(rows::json(&scopes))
        .bind(apikey::hex(&apikey::digest(&token)))
        .bind(now_rfc3339())
        .execute(&self.pool)
        .await?;
        let stored = self.admin_tokens().await?.into_iter().find(|t| t.id == id);
        Ok((stored.ok_or(StoreError::NotFound("admin token"))?, token))
    }

    /// The scoped token with this plaintext, if any.
    pub async fn admin_token_by_secret(&self, token: &str) -> StoreResult<Option<AdminToken>> {
        let row = sqlx::query("SELECT id, name, gateway_id, scopes, created_at FROM admin_tokens WHERE token_hash = $1")
            .bind(apikey::hex(&apikey::digest(token)))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    pub async fn admin_tokens(&self) -> StoreResult<Vec<AdminToken>> {
        let rows = sqlx::query("SELECT id, name, gateway_id, scopes, created_at FROM admin_tokens ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode).collect()
    }

    pub async fn delete_admin_token(&self, id: Uuid) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM admin_tokens WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("admin token"));
        }
        Ok(())
    }
}
