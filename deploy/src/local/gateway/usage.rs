//! Usage recorded by the gateway: each request's figures added to its
//! key's (or, without a usable key, its tenant's) counts for the minute,
//! in memory under a short lock; the background task writes them out
//! every [`FLUSH_EVERY`] (see `live::background`), off the request path,
//! where the state rolls them up to hours and days. A `SIGKILL` loses
//! what was not written yet: at most the last [`FLUSH_EVERY`] and the
//! write in flight. The quota counters are another table, never touched
//! here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;

use super::fast_hash::FastMap;
use crate::local::state::UsageRecord;
use crate::usage::Counts;

/// How often the recorded figures are written to the database.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(400);

/// What one request did, for its key's counts.
pub(super) struct Sample<'a> {
    pub tenant: &'a str,
    /// `None`: no usable key (a 403 `Forbidden`, or a refusal before the
    /// key was looked at).
    pub key_id: Option<&'a str>,
    pub at: SystemTime,
    pub status: StatusCode,
    pub refusal: Refusal,
    pub bytes_in: usize,
    pub bytes_out: usize,
    pub latency: Duration,
    pub invocation: Option<Invoked>,
    pub log_bytes: usize,
}

/// Which of the gateway's own refusals a request met, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    None,
    Forbidden,
    Throttled,
    QuotaExceeded,
}

/// A function invocation's figures.
#[derive(Debug, Clone, Copy)]
pub(super) struct Invoked {
    pub duration: Duration,
    pub memory_mb: u32,
    /// A crash or a timeout (Lambda's Errors metric).
    pub failed: bool,
    pub read_units: f64,
    pub write_units: f64,
}

/// Minute → tenant → key id ("" for none) → counts.
type Pending = FastMap<i64, FastMap<String, FastMap<String, Counts>>>;

/// Shards of the recorder: each worker thread adds to its own, so no
/// lock or cache line is shared between cores on the request path.
const SHARDS: usize = 8;

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

/// The figures recorded since the last flush.
#[derive(Default)]
pub(super) struct Recorder {
    shards: [Mutex<Pending>; SHARDS],
}

fn lock(m: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recorder {
    pub(super) fn record(&self, s: &Sample<'_>) {
        let minute =
            s.at.duration_since(UNIX_EPOCH)
                .map_or(0, |d| (d.as_secs() / 60 * 60) as i64);
        let mut pending = lock(&self.shards[SHARD.with(|i| *i)]);
        let tenants = pending.entry(minute).or_default();
        let keys = match tenants.get_mut(s.tenant) {
            Some(keys) => keys,
            None => tenants.entry(s.tenant.to_owned()).or_default(),
        };
        let key = s.key_id.unwrap_or("");
        let c = match keys.get_mut(key) {
            Some(c) => c,
            None => keys.entry(key.to_owned()).or_default(),
        };
        add(c, s);
    }

    /// Takes everything recorded so far, as rows to write (a key's minute
    /// may come once per shard: the state adds them up).
    pub(super) fn take(&self) -> Vec<UsageRecord> {
        let mut rows = Vec::new();
        for shard in &self.shards {
            let pending = std::mem::take(&mut *lock(shard));
            for (minute, tenants) in pending {
                for (tenant, keys) in tenants {
                    for (key_id, counts) in keys {
                        rows.push(UsageRecord {
                            tenant: tenant.clone(),
                            key_id,
                            minute,
                            counts,
                        });
                    }
                }
            }
        }
        rows
    }

    /// Puts back rows that could not be written, for the next flush.
    pub(super) fn restore(&self, rows: Vec<UsageRecord>) {
        let mut pending = lock(&self.shards[0]);
        for row in rows {
            pending
                .entry(row.minute)
                .or_default()
                .entry(row.tenant)
                .or_default()
                .entry(row.key_id)
                .or_default()
                .merge(&row.counts);
        }
    }
}

fn add(c: &mut Counts, s: &Sample<'_>) {
    c.requests += 1;
    match s.status.as_u16() / 100 {
        2 => c.status_2xx += 1,
        4 => c.status_4xx += 1,
        5 => c.status_5xx += 1,
        _ => {}
    }
    match s.refusal {
        Refusal::None => {}
        Refusal::Forbidden => c.forbidden += 1,
        Refusal::Throttled => c.throttled += 1,
        Refusal::QuotaExceeded => c.quota_refused += 1,
    }
    c.bytes_in += s.bytes_in as u64;
    c.bytes_out += s.bytes_out as u64;
    c.latency_us
        .record(u64::try_from(s.latency.as_micros()).unwrap_or(u64::MAX));
    c.log_bytes += s.log_bytes as u64;
    if let Some(i) = &s.invocation {
        c.invocations += 1;
        c.function_errors += u64::from(i.failed);
        let us = u64::try_from(i.duration.as_micros()).unwrap_or(u64::MAX);
        // Lambda bills the duration rounded up to the millisecond.
        let billed = us.div_ceil(1000).max(1);
        c.duration_us += us;
        c.billed_ms += billed;
        c.billed_mb_ms += billed * u64::from(i.memory_mb);
        c.read_units += i.read_units;
        c.write_units += i.write_units;
    }
}
