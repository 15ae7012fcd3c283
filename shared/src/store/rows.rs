//! Decoding of stored rows into model objects. A row whose JSON no longer parses is
//! reported as corrupt rather than skipped, so a bad write is noticed.

use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{StoreError, StoreResult};

pub(super) fn uuid(row: &AnyRow, column: &str, what: &'static str) -> StoreResult<Uuid> {
    let text: String = row.try_get(column)?;
    Uuid::parse_str(&text).map_err(|e| StoreError::Corrupt {
        what,
        reason: format!("{column}: {e}"),
    })
}

pub(super) fn spec<T: DeserializeOwned>(row: &AnyRow, what: &'static str) -> StoreResult<T> {
    let text: String = row.try_get("spec")?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        what,
        reason: e.to_string(),
    })
}

pub(super) fn json<T: serde::Serialize>(value: &T) -> String {
    // Serializing plain model structs into a String cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string())
}
