//! Users pushed to the daemon's SCIM endpoint (`kind = "scim"` sources): stored as their JSON
//! resource, read back by the daemon to answer SCIM requests and by a run as the source's records.
//! Every write checks the version it was made against, so two pushes to one User cannot both win.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::Store;
use crate::codec::{self, Cells};
use crate::error::{Doing, Error, Result};

/// One stored User.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUser {
    pub id: String,
    /// The resource as pushed (without `meta`).
    pub resource: Value,
    /// Counts the writes: `meta.version` (the ETag) is made from it.
    pub version: i64,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq)]
pub enum ScimWrite {
    Written(ScimUser),
    /// Another User of the source has this userName (compared case-insensitively).
    UserNameTaken,
    /// No such User, or not at the version the write was made against.
    Stale,
}

impl Store {
    /// Every User of `source`, in the order they were created.
    pub async fn scim_users(&self, source: &str) -> Result<Vec<ScimUser>> {
        let rows = sqlx::query(
            "SELECT id, resource, version, created, last_modified FROM scim_users WHERE source = $1
             ORDER BY created, id",
        )
        .bind(source)
        .fetch_all(&self.pool)
        .await
        .doing(|| format!("reading the SCIM Users of source {source}"))?;
        rows.iter().map(user).collect()
    }

    pub async fn scim_user(&self, source: &str, id: &str) -> Result<Option<ScimUser>> {
        let row = sqlx::query(
            "SELECT id, resource, version, created, last_modified FROM scim_users WHERE source = $1 AND id = $2",
        )
        .bind(source)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .doing(|| format!("reading SCIM User {id} of source {source}"))?;
        row.as_ref().map(user).transpose()
    }

    /// Creates (`version` none) or replaces (at `version`) the User `id` of `source`.
    pub async fn scim_write_user(
        &self,
        source: &str,
        id: &str,
        user_name: &str,
        resource: &Value,
        version: Option<i64>,
    ) -> Result<ScimWrite> {
        let doing = || format!("writing SCIM User {id} of source {source}");
        let text = serde_json::to_string(resource)
            .map_err(|source| Error::Encode { what: format!("SCIM User {id}"), source })?;
        let user_name_key = user_name.to_lowercase();
        let now = codec::now();
        let mut tx = self.write().await.doing(doing)?;
        let taken: Option<(String,)> =
            sqlx::query_as("SELECT id FROM scim_users WHERE source = $1 AND user_name_key = $2 AND id <> $3")
                .bind(source)
                .bind(&user_name_key)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .doing(doing)?;
        if taken.is_some() {
            return Ok(ScimWrite::UserNameTaken);
        }
        let written = match version {
            None => sqlx::query(
                "INSERT INTO scim_users (source, id, user_name_key, resource, version, created, last_modified)
                 VALUES ($1, $2, $3, $4, 1, $5, $5) ON CONFLICT (source, id) DO NOTHING",
            )
            .bind(source)
            .bind(id)
            .bind(&user_name_key)
            .bind(&text)
            .bind(codec::timestamp(now))
            .execute(&mut *tx)
            .await
            .doing(doing)?,
            Some(version) => sqlx::query(
                "UPDATE scim_users SET user_name_key = $3, resource = $4, version = version + 1, last_modified = $5
                 WHERE source = $1 AND id = $2 AND version = $6",
            )
            .bind(source)
            .bind(id)
            .bind(&user_name_key)
            .bind(&text)
            .bind(codec::timestamp(now))
            .bind(version)
            .execute(&mut *tx)
            .await
            .doing(doing)?,
        };
        if written.rows_affected() == 0 {
            return Ok(ScimWrite::Stale);
        }
        let row = sqlx::query(
            "SELECT id, resource, version, created, last_modified FROM scim_users WHERE source = $1 AND id = $2",
        )
        .bind(source)
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .doing(doing)?;
        let stored = user(&row)?;
        tx.commit().await.doing(doing)?;
        Ok(ScimWrite::Written(stored))
    }

    /// Deletes the User `id` of `source`; false when there was none.
    pub async fn scim_delete_user(&self, source: &str, id: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM scim_users WHERE source = $1 AND id = $2")
            .bind(source)
            .bind(id)
            .execute(&self.pool)
            .await
            .doing(|| format!("deleting SCIM User {id} of source {source}"))?;
        Ok(deleted.rows_affected() > 0)
    }
}

fn user(row: &sqlx::any::AnyRow) -> Result<ScimUser> {
    let cells = Cells::keyed_by(row, "scim_users", "id")?;
    Ok(ScimUser {
        id: cells.key().to_string(),
        resource: cells.json("resource")?,
        version: cells.int("version")?,
        created: cells.timestamp("created")?,
        last_modified: cells.timestamp("last_modified")?,
    })
}
