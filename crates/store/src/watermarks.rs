//! Watermarks of incremental sources: where the next read of a SQL source with a modified column
//! starts, and when its last full read landed; and when each target was last read in full. Written only after a run in which every operation
//! landed: a person whose operations failed is not recorded, so the rows read since the old
//! watermark must be read again.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::Store;
use crate::codec::{self, Cells};
use crate::error::{Doing, Result};

/// Format of a stored watermark: the source's clock, to the microsecond, without a zone.
const WATERMARK_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f";

/// One source's watermark as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    /// The latest modification time the last landed read saw.
    pub watermark: NaiveDateTime,
    /// When the last full read (the one that notices who has gone) landed.
    pub full_read_at: DateTime<Utc>,
}

/// What a read leaves for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatermarkUpdate {
    pub watermark: NaiveDateTime,
    /// The read was full: its moment becomes `full_read_at`.
    pub full: bool,
}

impl Store {
    /// Every source's watermark.
    pub async fn watermarks(&self) -> Result<BTreeMap<String, Watermark>> {
        let doing = || "reading the sources' watermarks".to_string();
        let rows = sqlx::query("SELECT source, watermark, full_read_at FROM source_watermarks ORDER BY source")
            .fetch_all(&self.pool)
            .await
            .doing(doing)?;
        let mut marks = BTreeMap::new();
        for row in &rows {
            let cells = Cells::keyed_by(row, "source_watermarks", "source")?;
            let text = cells.text("watermark")?;
            let watermark = NaiveDateTime::parse_from_str(&text, WATERMARK_FORMAT)
                .map_err(|e| cells.corrupt("watermark", format!("{text:?} is not a moment: {e}")))?;
            marks.insert(
                cells.key().to_string(),
                Watermark { watermark, full_read_at: cells.timestamp("full_read_at")? },
            );
        }
        Ok(marks)
    }

    /// Records where the next reads start, in one transaction. An incremental read keeps the
    /// source's `full_read_at`; a full one sets it to now.
    pub async fn record_watermarks(&self, updates: &BTreeMap<String, WatermarkUpdate>) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let doing = || "recording the sources' watermarks".to_string();
        let now = codec::timestamp(codec::now());
        let mut tx = self.write().await.doing(doing)?;
        for (source, update) in updates {
            sqlx::query(
                "INSERT INTO source_watermarks (source, watermark, full_read_at) VALUES ($1, $2, $3)
                 ON CONFLICT (source) DO UPDATE SET watermark = excluded.watermark,
                     full_read_at = CASE WHEN $4 THEN excluded.full_read_at ELSE source_watermarks.full_read_at END",
            )
            .bind(source)
            .bind(update.watermark.format(WATERMARK_FORMAT).to_string())
            .bind(&now)
            .bind(update.full)
            .execute(&mut *tx)
            .await
            .doing(doing)?;
        }
        tx.commit().await.doing(doing)
    }

    /// When each target was last read in full, with the configuration hash of that run.
    pub async fn target_full_reads(&self) -> Result<BTreeMap<String, TargetFullRead>> {
        let doing = || "reading when the targets were last read in full".to_string();
        let rows = sqlx::query("SELECT target, full_read_at, config_hash FROM target_full_reads ORDER BY target")
            .fetch_all(&self.pool)
            .await
            .doing(doing)?;
        let mut reads = BTreeMap::new();
        for row in &rows {
            let cells = Cells::keyed_by(row, "target_full_reads", "target")?;
            reads.insert(
                cells.key().to_string(),
                TargetFullRead { at: cells.timestamp("full_read_at")?, config_hash: cells.text("config_hash")? },
            );
        }
        Ok(reads)
    }

    /// Records that `targets` were read in full now, by a run with configuration `config_hash`.
    pub async fn record_target_full_reads(&self, targets: &[String], config_hash: &str) -> Result<()> {
        if targets.is_empty() {
            return Ok(());
        }
        let doing = || "recording the targets' full reads".to_string();
        let now = codec::timestamp(codec::now());
        let mut tx = self.write().await.doing(doing)?;
        for target in targets {
            sqlx::query(
                "INSERT INTO target_full_reads (target, full_read_at, config_hash) VALUES ($1, $2, $3)
                 ON CONFLICT (target) DO UPDATE SET full_read_at = excluded.full_read_at,
                     config_hash = excluded.config_hash",
            )
            .bind(target)
            .bind(&now)
            .bind(config_hash)
            .execute(&mut *tx)
            .await
            .doing(doing)?;
        }
        tx.commit().await.doing(doing)
    }
}

/// A target's last full read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFullRead {
    pub at: DateTime<Utc>,
    /// The configuration of the run that read it.
    pub config_hash: String,
}
