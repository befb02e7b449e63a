//! Quota counters of the local target: requests counted per key and
//! period, only ever raised. `quota_usage` is what the gateway enforces:
//! reserved in blocks ahead of serving, so it can run up to a block ahead
//! of what was served. `quota_served` is what was served, as the gateway
//! last wrote it (with its usage figures), for reports.

use runtime::tenant::Period;
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use super::{LocalState, sql};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS quota_served (
    key_id TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    served INTEGER NOT NULL,
    PRIMARY KEY (key_id, period_start)
) WITHOUT ROWID;
";

impl LocalState {
    /// Raises the served counts of keys in periods: `(key id, period
    /// start, served)`.
    pub async fn quota_served_upto(&self, counts: Vec<(String, i64, u64)>) -> anyhow::Result<()> {
        self.db
            .write(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "INSERT INTO quota_served (key_id, period_start, served) VALUES (?1, ?2, ?3)
                         ON CONFLICT (key_id, period_start) DO UPDATE SET served = max(served, excluded.served)",
                    )
                    .map_err(sql)?;
                for (key, start, served) in &counts {
                    stmt.execute(params![key, start, *served as i64]).map_err(sql)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// A key's quota use in a period as a report shows it: what was served
    /// when the gateway last wrote it down, or the enforced count when it
    /// never did (a key rotated before, or a data directory from before
    /// served counts were kept).
    pub async fn quota_report(&self, key_id: &str, period_start: i64) -> anyhow::Result<u64> {
        let key_id = key_id.to_owned();
        Ok(self
            .db
            .read(move |c| {
                c.query_row(
                    "SELECT coalesce(
                        (SELECT served FROM quota_served WHERE key_id = ?1 AND period_start = ?2),
                        (SELECT used FROM quota_usage WHERE key_id = ?1 AND period_start = ?2),
                        0)",
                    params![key_id, period_start],
                    |r| r.get::<_, i64>(0),
                )
                .map(|v| v as u64)
                .map_err(sql)
            })
            .await?)
    }

    /// Requests counted against a key's quota in the period starting at
    /// `period_start` (Unix seconds).
    pub async fn quota_used(&self, key_id: &str, period_start: i64) -> anyhow::Result<u64> {
        let key_id = key_id.to_owned();
        Ok(self
            .db
            .read(move |c| {
                c.query_row(
                    "SELECT used FROM quota_usage WHERE key_id = ?1 AND period_start = ?2",
                    params![key_id, period_start],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
                .map(|v| v.unwrap_or(0) as u64)
                .map_err(sql)
            })
            .await?)
    }

    /// Durably raises a key's counted use in a period to at least `upto`
    /// (counts never go down) and returns the stored count. The gateway
    /// reserves blocks ahead of serving them, so a crash can only
    /// over-count, never let a client past its quota.
    pub async fn quota_reserve(
        &self,
        key_id: &str,
        period_start: i64,
        upto: u64,
    ) -> anyhow::Result<u64> {
        let key_id = key_id.to_owned();
        Ok(self
            .db
            .write(move |c| {
                c.query_row(
                    "INSERT INTO quota_usage (key_id, period_start, used) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key_id, period_start) DO UPDATE SET used = max(used, excluded.used)
                     RETURNING used",
                    params![key_id, period_start, upto as i64],
                    |r| r.get::<_, i64>(0),
                )
                .map(|v| v as u64)
                .map_err(sql)
            })
            .await?)
    }
}

/// The start (Unix seconds, UTC) of the quota period holding `now`: the
/// day, the ISO week (from Monday), or the month.
pub fn period_start(period: Period, now: OffsetDateTime) -> i64 {
    let date = now.date();
    let start = match period {
        Period::Day => date,
        Period::Week => {
            date - time::Duration::days(i64::from(date.weekday().number_days_from_monday()))
        }
        Period::Month => date.replace_day(1).unwrap_or(date),
    };
    start.midnight().assume_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn periods_start_on_utc_boundaries() {
        let t = datetime!(2026-11-25 13:45:00 UTC); // a Wednesday
        assert_eq!(
            period_start(Period::Day, t),
            datetime!(2026-11-25 0:00 UTC).unix_timestamp()
        );
        assert_eq!(
            period_start(Period::Week, t),
            datetime!(2026-11-23 0:00 UTC).unix_timestamp()
        );
        assert_eq!(
            period_start(Period::Month, t),
            datetime!(2026-11-01 0:00 UTC).unix_timestamp()
        );
    }
}
