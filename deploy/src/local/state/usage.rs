//! Usage figures of the local target: what the gateway recorded per key
//! and minute, rolled up to hours and days as it is written. Minutes are
//! kept [`KEEP_MINUTES`] and hours [`KEEP_HOURS`]; days are kept. Apart
//! from the quota counters (`quota`), which these never change.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{OptionalExtension, params};

use super::{LocalState, sql};
use crate::usage::Counts;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage (
    grain TEXT NOT NULL,
    start INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    key_id TEXT NOT NULL,
    counts TEXT NOT NULL,
    PRIMARY KEY (grain, start, tenant, key_id)
) WITHOUT ROWID;
";

/// How long rows of each grain are kept, in seconds.
pub const KEEP_MINUTES: i64 = 8 * 86_400;
pub const KEEP_HOURS: i64 = 93 * 86_400;

/// The span of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Minute,
    Hour,
    Day,
}

impl Grain {
    fn code(self) -> &'static str {
        match self {
            Grain::Minute => "m",
            Grain::Hour => "h",
            Grain::Day => "d",
        }
    }

    fn seconds(self) -> i64 {
        match self {
            Grain::Minute => 60,
            Grain::Hour => 3_600,
            Grain::Day => 86_400,
        }
    }

    /// The start of the row of this grain that holds `t` (Unix seconds).
    pub fn start(self, t: i64) -> i64 {
        t - t.rem_euclid(self.seconds())
    }
}

/// One key's figures (the tenant's own, for requests without a usable
/// key, when `key_id` is empty) for a minute.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub tenant: String,
    pub key_id: String,
    /// Unix seconds, on a minute.
    pub minute: i64,
    pub counts: Counts,
}

/// One stored row: a key's figures over a grain from `start`.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub tenant: String,
    pub key_id: String,
    pub start: i64,
    pub counts: Counts,
}

impl LocalState {
    /// Adds recorded figures to their minute, hour and day, in one
    /// transaction, and drops rows past their keeping.
    pub async fn record_usage(&self, records: Vec<UsageRecord>) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.db
            .write(move |c| {
                let mut select = c
                    .prepare_cached(
                        "SELECT counts FROM usage WHERE grain = ?1 AND start = ?2 AND tenant = ?3 AND key_id = ?4",
                    )
                    .map_err(sql)?;
                let mut upsert = c
                    .prepare_cached(
                        "INSERT INTO usage (grain, start, tenant, key_id, counts) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (grain, start, tenant, key_id) DO UPDATE SET counts = excluded.counts",
                    )
                    .map_err(sql)?;
                for r in &records {
                    for grain in [Grain::Minute, Grain::Hour, Grain::Day] {
                        let start = grain.start(r.minute);
                        let stored: Option<String> = select
                            .query_row(params![grain.code(), start, r.tenant, r.key_id], |row| {
                                row.get(0)
                            })
                            .optional()
                            .map_err(sql)?;
                        let mut counts = match stored {
                            // A row this version cannot read is replaced
                            // rather than blocking every later write.
                            Some(text) => serde_json::from_str::<Counts>(&text).unwrap_or_default(),
                            None => Counts::default(),
                        };
                        counts.merge(&r.counts);
                        let text = serde_json::to_string(&counts)
                            .map_err(|e| runtime::StoreError::Backend(e.to_string()))?;
                        upsert
                            .execute(params![grain.code(), start, r.tenant, r.key_id, text])
                            .map_err(sql)?;
                    }
                }
                c.execute(
                    "DELETE FROM usage WHERE (grain = 'm' AND start < ?1) OR (grain = 'h' AND start < ?2)",
                    params![now - KEEP_MINUTES, now - KEEP_HOURS],
                )
                .map_err(sql)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// The stored rows of a grain starting in `[from, to)` (Unix seconds),
    /// in start order.
    pub async fn usage(&self, grain: Grain, from: i64, to: i64) -> anyhow::Result<Vec<UsageRow>> {
        let rows = self
            .db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT start, tenant, key_id, counts FROM usage
                         WHERE grain = ?1 AND start >= ?2 AND start < ?3 ORDER BY start, tenant, key_id",
                    )
                    .map_err(sql)?;
                stmt.query_map(params![grain.code(), from, to], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(sql)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql)
            })
            .await?;
        rows.into_iter()
            .map(|(start, tenant, key_id, text)| {
                let counts = serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("usage row {tenant}/{key_id} at {start} is unreadable: {e}")
                })?;
                Ok(UsageRow {
                    tenant,
                    key_id,
                    start,
                    counts,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tenant: &str, key: &str, minute: i64, requests: u64) -> UsageRecord {
        let mut counts = Counts {
            requests,
            status_2xx: requests,
            ..Counts::default()
        };
        counts.latency_us.record(1_000);
        UsageRecord {
            tenant: tenant.into(),
            key_id: key.into(),
            minute,
            counts,
        }
    }

    #[tokio::test]
    async fn figures_roll_up_to_hours_and_days_and_add_across_writes() {
        let dir = tempfile::tempdir().unwrap();
        let state = LocalState::open(dir.path()).await.unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let day = Grain::Day.start(now);
        let m1 = day + 60;
        let m2 = day + 3_600 + 120;
        state
            .record_usage(vec![record("a", "k1", m1, 3), record("a", "", m1, 1)])
            .await
            .unwrap();
        state
            .record_usage(vec![record("a", "k1", m2, 4), record("a", "k1", m1, 2)])
            .await
            .unwrap();

        let minutes = state.usage(Grain::Minute, day, day + 86_400).await.unwrap();
        let got: Vec<(i64, &str, u64)> = minutes
            .iter()
            .map(|r| (r.start, r.key_id.as_str(), r.counts.requests))
            .collect();
        assert_eq!(got, vec![(m1, "", 1), (m1, "k1", 5), (m2, "k1", 4)]);

        let hours = state.usage(Grain::Hour, day, day + 86_400).await.unwrap();
        let k1: Vec<(i64, u64)> = hours
            .iter()
            .filter(|r| r.key_id == "k1")
            .map(|r| (r.start, r.counts.requests))
            .collect();
        assert_eq!(k1, vec![(day, 5), (day + 3_600, 4)]);

        let days = state.usage(Grain::Day, day, day + 86_400).await.unwrap();
        let k1 = days.iter().find(|r| r.key_id == "k1").unwrap();
        assert_eq!(k1.counts.requests, 9);
        assert_eq!(k1.counts.latency_us.count(), 3, "one latency per record written");

        // Nothing outside the range.
        assert!(state.usage(Grain::Day, day + 86_400, day + 2 * 86_400).await.unwrap().is_empty());
    }
}
