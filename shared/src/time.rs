//! Timestamps as the store and the API carry them: RFC 3339 in UTC with microseconds,
//! a fixed width so that text order is time order in both SQLite and PostgreSQL.

use chrono::{SecondsFormat, Utc};

/// Now, formatted for the store and the API.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}
