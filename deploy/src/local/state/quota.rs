//! Quota counters of the local target: requests counted per key and
//! period, only ever raised.

use runtime::tenant::Period;
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use super::{LocalState, sql};

impl LocalState {
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
