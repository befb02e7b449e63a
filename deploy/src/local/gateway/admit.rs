//! Admission, in API Gateway's order: the API key (403 `Forbidden`), the
//! token buckets (429 `Too Many Requests`), then the quota (429 `Limit
//! Exceeded`). The buckets and quota leases live in the keys and tenants
//! that `live` serves, which hand them on across reloads.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::{DefaultDirectRateLimiter, Quota as Rate, RateLimiter};
use http::header::{HeaderMap, HeaderName};
use runtime::tenant::Quota;
use time::OffsetDateTime;

use super::Gateway;
use super::error::GatewayError;
use super::live::{KeyRt, Live, TenantRt};
use crate::local::state::{hash_key, period_start, same_hash};

/// The account-wide bucket: API Gateway's default account throttle.
pub(super) const ACCOUNT_RATE: u32 = 10_000;
pub(super) const ACCOUNT_BURST: u32 = 5_000;
/// The largest block of quota reserved ahead.
const QUOTA_BLOCK_MAX: u64 = 1_000;

static API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// A key's quota count in the current period: `used` served, `reserved`
/// durably counted (`used <= reserved` always).
#[derive(Debug, Default)]
pub(super) struct Lease {
    period_start: Option<i64>,
    used: u64,
    reserved: u64,
    /// `used` as last written to the served counts (for reports).
    recorded: u64,
}

impl Lease {
    /// The period and served count to write down, when it changed since
    /// the last call.
    pub(super) fn unrecorded(&mut self) -> Option<(i64, u64)> {
        let start = self.period_start?;
        (self.used != self.recorded).then(|| {
            self.recorded = self.used;
            (start, self.used)
        })
    }
}

/// The request's API key and its value, when it is usable and the routed
/// tenant's; `None` is 403 `Forbidden`. A key found is marked used, for
/// the next batch of last-used times.
pub(super) fn key<'a>(
    live: &Live,
    headers: &'a HeaderMap,
    t: &TenantRt,
    now: SystemTime,
) -> Option<(Arc<KeyRt>, &'a str)> {
    let now_unix = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let (key, key_value) = headers
        .get(&API_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(|value| {
            let hash = hash_key(value);
            let key = live.keys.get(&hash)?;
            (same_hash(&key.record.hash, &hash)
                && key.record.tenant == t.id
                && key.record.usable(now_unix))
            .then_some((Arc::clone(key), value))
        })?;
    if !key.touched.load(Ordering::Relaxed) {
        key.touched.store(true, Ordering::Relaxed);
    }
    Some((key, key_value))
}

impl Gateway {
    /// Whether a bucket refuses the request (429 `Too Many Requests`), in
    /// API Gateway's order: the key's bucket, the API's (all keys
    /// together), then the account's. A bucket that refuses spends nothing
    /// from those after it.
    pub(super) fn throttled(&self, key: &KeyRt, t: &TenantRt) -> bool {
        key.limiter.check().is_err()
            || t.api_bucket
                .as_ref()
                .is_some_and(|(_, b)| b.check().is_err())
            || self.inner.account.check().is_err()
    }

    /// Counts the request against its key's quota, when the tenant sets
    /// one: 429 `Limit Exceeded` when it is used up, 500 when it cannot be
    /// counted durably.
    pub(super) async fn count(
        &self,
        key: &KeyRt,
        t: &TenantRt,
        now: SystemTime,
    ) -> Result<(), GatewayError> {
        if let Some(quota) = t.quota {
            match self.admit(key, quota, OffsetDateTime::from(now)).await {
                Ok(true) => {}
                Ok(false) => return Err(GatewayError::LimitExceeded),
                Err(e) => {
                    tracing::error!(tenant = %t.id, error = %e, "cannot count the request against the quota");
                    return Err(GatewayError::Internal);
                }
            }
        }
        Ok(())
    }

    /// Counts one request against a key's quota, reserving a block ahead
    /// in the database when the lease is used up. `false` when the quota
    /// is used up.
    async fn admit(&self, key: &KeyRt, quota: Quota, now: OffsetDateTime) -> anyhow::Result<bool> {
        let start = period_start(quota.period, now);
        let state = &self.inner.state;
        let id = &key.record.id;
        let mut lease = key.lease.lock().await;
        if lease.period_start != Some(start) {
            let used = state.quota_used(id, start).await?;
            *lease = Lease {
                period_start: Some(start),
                used,
                reserved: used,
                recorded: 0,
            };
        }
        // Twice at most: a second round only if someone else (another
        // gateway on this directory) counted more than this lease knew.
        for _ in 0..3 {
            if lease.used >= quota.limit {
                return Ok(false);
            }
            if lease.used < lease.reserved {
                lease.used += 1;
                return Ok(true);
            }
            let upto = lease
                .used
                .saturating_add(quota_block(quota.limit))
                .min(quota.limit);
            let stored = state.quota_reserve(id, start, upto).await?;
            if stored > upto {
                // Counted elsewhere: take all of it as used.
                lease.used = stored;
            }
            lease.reserved = stored.max(upto);
        }
        Ok(false)
    }
}

/// The block of quota reserved ahead: 1 % of the limit, at least 1, at
/// most 1,000.
pub(super) fn quota_block(limit: u64) -> u64 {
    (limit / 100).clamp(1, QUOTA_BLOCK_MAX)
}

/// A key's token bucket: `rate` tokens a second (may be fractional),
/// `burst` at most.
pub(super) fn key_limiter(rate: f64, burst: u32) -> DefaultDirectRateLimiter {
    let period = if rate.is_finite() && rate > 0.0 {
        Duration::try_from_secs_f64(1.0 / rate)
            .ok()
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_nanos(1))
    } else {
        // No refill to speak of: the burst only.
        Duration::from_secs(365 * 24 * 3600)
    };
    let quota = Rate::with_period(period)
        .unwrap_or(Rate::per_second(NonZeroU32::MAX))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
    RateLimiter::direct(quota)
}
