//! A key's quota on API Gateway: what `GetUsage` says it used and has left
//! in the usage plan's current period, and `UpdateUsage`, which sets what
//! is left (how a rotation carries the used quota over to the new key).
//!
//! GetUsage answers per key a daily log `[used, remaining]` between two
//! dates at most 90 days apart, paged by `position` (at most 500 keys a
//! page); UpdateUsage takes `replace /remaining <n>` (API Gateway API
//! reference, "GetUsage", "UpdateUsage", "Usage"). Neither has a rate
//! quota of its own: both count against API Gateway's 10 a second.

use std::collections::BTreeMap;

use aws_sdk_apigateway::types::{QuotaPeriodType, QuotaSettings};
use time::{Date, Duration, OffsetDateTime};

use super::pacer::APIGW;
use super::patch::replace;
use super::{AwsTarget, fail};
use crate::usage::QuotaNow;

/// The most keys one GetUsage page holds.
pub const MAX_PAGE: i32 = 500;

/// A plan's quota: its limit and period, from GetUsagePlan or a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    /// `DAY`, `WEEK` or `MONTH`.
    pub period: String,
    /// The day the period starts on: the weekday from Sunday (WEEK), the
    /// day of the month from the first (MONTH).
    pub offset: i32,
}

impl Quota {
    pub fn of(settings: Option<&QuotaSettings>) -> Option<Quota> {
        let q = settings?;
        let period = match q.period()? {
            QuotaPeriodType::Day => "DAY",
            QuotaPeriodType::Week => "WEEK",
            QuotaPeriodType::Month => "MONTH",
            _ => return None,
        };
        Some(Quota {
            limit: u64::try_from(q.limit()).ok()?,
            period: period.to_owned(),
            offset: q.offset().max(0),
        })
    }

    /// The first day (UTC) of the period holding `today`. The offset is
    /// QuotaSettings' `offset`: "with a time period of WEEK, an offset of 0
    /// starts on Sunday, and an offset of 1 starts on Monday" (API Gateway
    /// API reference, "QuotaSettings").
    pub fn period_start(&self, today: Date) -> Date {
        match self.period.as_str() {
            "WEEK" => {
                let into = (i64::from(today.weekday().number_days_from_sunday())
                    - i64::from(self.offset % 7))
                .rem_euclid(7);
                today - Duration::days(into)
            }
            "MONTH" => {
                let day = u8::try_from(self.offset.clamp(0, 27) + 1).unwrap_or(1);
                let this = today.replace_day(day).unwrap_or(today);
                if this <= today {
                    this
                } else {
                    // The period began last month.
                    let last = this - Duration::days(28);
                    last.replace_day(day).unwrap_or(last)
                }
            }
            _ => today,
        }
    }
}

/// `YYYY-MM-DD`, as GetUsage takes and answers dates.
pub fn day(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

pub fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

/// A key's daily log in one GetUsage answer, added up: what it used over
/// the range, and what its last day had left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Used {
    pub used: u64,
    pub remaining: Option<u64>,
}

impl Used {
    /// From the daily log `[[used, remaining], ...]`, oldest day first.
    pub fn from_log(days: &[Vec<i64>]) -> Used {
        let used = days
            .iter()
            .filter_map(|d| d.first())
            .map(|&u| u64::try_from(u).unwrap_or(0))
            .sum();
        let remaining = days
            .iter()
            .rev()
            .find_map(|d| d.get(1))
            .map(|&r| u64::try_from(r).unwrap_or(0));
        Used { used, remaining }
    }

    /// The quota now, in the period starting `start`. The used share is
    /// the larger of the days' sum and the limit less what is left: an
    /// UpdateUsage that lowered what is left (a rotation's carry-over)
    /// shows in the second, one that raised it (an extension) in neither.
    pub fn quota(&self, quota: &Quota, start: Date) -> QuotaNow {
        let remaining = self
            .remaining
            .unwrap_or(quota.limit.saturating_sub(self.used));
        QuotaNow {
            limit: quota.limit,
            period: quota.period.clone(),
            period_start: day(start),
            used: self.used.max(quota.limit.saturating_sub(remaining)),
            remaining,
        }
    }
}

/// GetUsage of a plan between two days (inclusive), for one key or all,
/// every page: each key's log added up.
pub async fn get(
    t: &AwsTarget,
    plan: &str,
    key: Option<&str>,
    start: Date,
    end: Date,
    page: i32,
) -> anyhow::Result<BTreeMap<String, Used>> {
    if end - start > Duration::days(89) {
        anyhow::bail!(
            "GetUsage covers at most 90 days; asked for {} to {}",
            day(start),
            day(end)
        );
    }
    let mut out = BTreeMap::new();
    let mut position: Option<String> = None;
    loop {
        t.pacer.read(APIGW).await;
        let answer = t
            .apigateway
            .get_usage()
            .usage_plan_id(plan)
            .set_key_id(key.map(str::to_owned))
            .start_date(day(start))
            .end_date(day(end))
            .limit(page.clamp(1, MAX_PAGE))
            .set_position(position.take())
            .send()
            .await
            .map_err(|e| fail(&format!("API Gateway GetUsage {plan}"), e))?;
        for (id, days) in answer.items().into_iter().flatten() {
            let used = Used::from_log(days);
            let entry: &mut Used = out.entry(id.clone()).or_default();
            entry.used += used.used;
            if used.remaining.is_some() {
                entry.remaining = used.remaining;
            }
        }
        match answer.position() {
            Some(p) if !p.is_empty() => position = Some(p.to_owned()),
            _ => break,
        }
    }
    Ok(out)
}

/// The plan's quota settings (none when it has no quota).
pub async fn plan_quota(t: &AwsTarget, plan: &str) -> anyhow::Result<Option<Quota>> {
    t.pacer.read(APIGW).await;
    let p = t
        .apigateway
        .get_usage_plan()
        .usage_plan_id(plan)
        .send()
        .await
        .map_err(|e| fail(&format!("API Gateway GetUsagePlan {plan}"), e))?;
    Ok(Quota::of(p.quota()))
}

/// Sets what a key has left of its quota in the current period.
pub async fn set_remaining(
    t: &AwsTarget,
    plan: &str,
    key: &str,
    remaining: u64,
) -> anyhow::Result<()> {
    t.pacer.write(APIGW).await;
    t.apigateway
        .update_usage()
        .usage_plan_id(plan)
        .key_id(key)
        .patch_operations(replace("/remaining", &remaining.to_string())?)
        .send()
        .await
        .map_err(|e| fail(&format!("API Gateway UpdateUsage {plan} {key}"), e))?;
    Ok(())
}

/// Carries what `old` used of the plan's quota in the current period over
/// to `new` (both in the plan): `new` is left with the limit less what
/// both used. Returns the quota `new` has now; none when the plan has no
/// quota (nothing to carry).
pub async fn carry_over(
    t: &AwsTarget,
    plan: &str,
    old: &str,
    new: &str,
) -> anyhow::Result<Option<QuotaNow>> {
    let Some(quota) = plan_quota(t, plan).await? else {
        return Ok(None);
    };
    let today = today();
    let start = quota.period_start(today);
    let mut used = 0;
    for key in [old, new] {
        let logs = get(t, plan, Some(key), start, today, MAX_PAGE).await?;
        let u = logs.get(key).copied().unwrap_or_default();
        used += u.quota(&quota, start).used;
    }
    let remaining = quota.limit.saturating_sub(used);
    set_remaining(t, plan, new, remaining).await?;
    Ok(Some(QuotaNow {
        limit: quota.limit,
        period: quota.period.clone(),
        period_start: day(start),
        used,
        remaining,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn quota(period: &str, offset: i32) -> Quota {
        Quota {
            limit: 100,
            period: period.into(),
            offset,
        }
    }

    #[test]
    fn periods_start_where_the_offset_says() {
        // 2026-11-30 is a Monday.
        let monday = date!(2026 - 11 - 30);
        assert_eq!(quota("DAY", 0).period_start(monday), monday);
        assert_eq!(
            quota("WEEK", 0).period_start(monday),
            date!(2026 - 11 - 29),
            "offset 0 starts on Sunday"
        );
        assert_eq!(quota("WEEK", 1).period_start(monday), monday);
        assert_eq!(quota("WEEK", 2).period_start(monday), date!(2026 - 11 - 24));
        assert_eq!(
            quota("MONTH", 0).period_start(monday),
            date!(2026 - 11 - 01)
        );
        assert_eq!(
            quota("MONTH", 29).period_start(date!(2026 - 12 - 03)),
            date!(2026 - 11 - 28),
            "a late offset is clamped to a day every month has"
        );
        assert_eq!(
            quota("MONTH", 9).period_start(date!(2026 - 01 - 05)),
            date!(2025 - 12 - 10)
        );
    }

    #[test]
    fn a_log_adds_up_and_keeps_the_last_remaining() {
        // The example of API Gateway's "Usage" reference.
        let log = vec![vec![0, 100], vec![10, 90], vec![100, 10]];
        let used = Used::from_log(&log);
        assert_eq!(
            used,
            Used {
                used: 110,
                remaining: Some(10)
            }
        );
        let start = date!(2026 - 11 - 01);
        let q = used.quota(&quota("MONTH", 0), start);
        assert_eq!((q.used, q.remaining, q.limit), (110, 10, 100));
        assert_eq!(q.period_start, "2026-11-01");
        // A carried-over quota: nothing used yet, 40 left of 100.
        let carried = Used {
            used: 0,
            remaining: Some(40),
        };
        assert_eq!(carried.quota(&quota("DAY", 0), start).used, 60);
        // A key with no log: all of it left.
        let none = Used::default().quota(&quota("DAY", 0), start);
        assert_eq!((none.used, none.remaining), (0, 100));
    }
}
