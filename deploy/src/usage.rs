//! Usage, cost and health per tenant and per API key, on both targets.
//!
//! One shape of figures ([`Counts`]) for a key (or a tenant's requests
//! without a usable key) over a span of time. The local gateway records
//! them per minute and rolls them up to hours and days
//! (`local::state::usage`); the AWS target reads them from API Gateway's
//! `GetUsage`, CloudWatch metrics and the stage's access log. `report`
//! adds them up by tenant, key and period and prices them from one price
//! table (`prices`).

pub mod gather;
pub mod histogram;
pub mod prices;
pub mod report;

use serde::{Deserialize, Serialize};

pub use gather::{Source, Span, gather};
pub use histogram::Histogram;

/// What a key's (or a tenant's) traffic did over some span of time. Every
/// field adds up: the figures of a longer span, or of several keys, are
/// the [`Counts::merge`] of the parts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    /// Every request routed to the tenant, refused or not.
    pub requests: u64,
    /// Responses by status class (2xx, 4xx and 5xx; the refusals below
    /// are among the 4xx, as API Gateway's 4XXError metric counts them).
    pub status_2xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
    /// 429 `Too Many Requests`: refused by a token bucket.
    pub throttled: u64,
    /// 429 `Limit Exceeded`: refused by the usage plan's quota.
    pub quota_refused: u64,
    /// 403 `Forbidden`: no usable key (counted on the tenant, not a key).
    pub forbidden: u64,
    /// Request and response body bytes.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The gateway's latency per request, in microseconds.
    pub latency_us: Histogram,
    /// Function invocations, and those that failed as Lambda counts an
    /// error (a crash or a timeout: a 502 or 504 from the gateway).
    pub invocations: u64,
    pub function_errors: u64,
    /// Function time: measured, billed (rounded up to the millisecond, as
    /// Lambda bills), and billed times the memory size (MB·ms, so the
    /// GB-seconds of a span whose memory size changed stay right).
    pub duration_us: u64,
    pub billed_ms: u64,
    pub billed_mb_ms: u64,
    /// DynamoDB on-demand request units the table used.
    pub read_units: f64,
    pub write_units: f64,
    /// Bytes written to the logs (CloudWatch Logs ingestion).
    pub log_bytes: u64,
}

impl Counts {
    pub fn merge(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.status_2xx += o.status_2xx;
        self.status_4xx += o.status_4xx;
        self.status_5xx += o.status_5xx;
        self.throttled += o.throttled;
        self.quota_refused += o.quota_refused;
        self.forbidden += o.forbidden;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.latency_us.merge(&o.latency_us);
        self.invocations += o.invocations;
        self.function_errors += o.function_errors;
        self.duration_us += o.duration_us;
        self.billed_ms += o.billed_ms;
        self.billed_mb_ms += o.billed_mb_ms;
        self.read_units += o.read_units;
        self.write_units += o.write_units;
        self.log_bytes += o.log_bytes;
    }

    /// The errors a client saw: every 4xx and 5xx.
    pub fn errors(&self) -> u64 {
        self.status_4xx + self.status_5xx
    }

    /// The latency at a quantile, in milliseconds.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        self.latency_us.quantile(q).map(|us| us as f64 / 1000.0)
    }
}

/// One key's figures over one span of time (an hour or a day), from
/// either target. `key_id` is empty for a tenant's requests that had no
/// usable key.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub tenant: String,
    pub key_id: String,
    /// Unix seconds (UTC) where the span starts.
    pub start: i64,
    pub counts: Counts,
}

/// A key as a report names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub tenant: String,
    pub key_id: String,
    /// The key's name (`<tenant>-<client>`, or as declared).
    pub name: String,
    pub client: String,
    pub enabled: bool,
}

/// A key's quota in the current period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaNow {
    pub limit: u64,
    /// `DAY`, `WEEK` or `MONTH`, as API Gateway names it.
    pub period: String,
    /// The period's first day (`YYYY-MM-DD`, UTC).
    pub period_start: String,
    pub used: u64,
    pub remaining: u64,
}

impl QuotaNow {
    /// The share of the quota used, from 0 (1 is all of it).
    pub fn share(&self) -> f64 {
        if self.limit == 0 {
            1.0
        } else {
            self.used as f64 / self.limit as f64
        }
    }
}

/// An alarm's state as last evaluated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmState {
    pub tenant: String,
    pub name: String,
    pub metric: String,
    pub threshold: f64,
    pub minutes: u32,
    /// `OK` or `ALARM` (`INSUFFICIENT_DATA` on AWS too).
    pub state: String,
    /// RFC 3339: when it entered this state.
    pub since: String,
    /// The value last evaluated (none without requests in the window).
    pub value: Option<f64>,
}

/// The `quota_share` rules of these tenants evaluated on the quotas a
/// target reported: on AWS no CloudWatch metric is per key, so `apifactory
/// usage` evaluates them from GetUsage (`up` does so locally on its own).
pub fn quota_alarms(tenants: &[runtime::Tenant], gathered: &Gathered) -> Vec<AlarmState> {
    let mut out = Vec::new();
    for t in tenants {
        let rules = t
            .alarms
            .iter()
            .filter(|a| a.metric == runtime::tenant::AlarmMetric::QuotaShare);
        for a in rules {
            let share = gathered
                .keys
                .iter()
                .filter(|k| k.tenant == t.id && k.enabled)
                .filter_map(|k| gathered.quotas.get(&k.key_id))
                .map(QuotaNow::share)
                .reduce(f64::max);
            out.push(AlarmState {
                tenant: t.id.clone(),
                name: a.name.clone(),
                metric: a.metric.as_str().to_owned(),
                threshold: a.threshold,
                minutes: a.minutes,
                state: if share.is_some_and(|s| s > a.threshold) {
                    "ALARM"
                } else {
                    "OK"
                }
                .to_owned(),
                since: runtime::field::now_rfc3339(),
                value: share,
            });
        }
    }
    out
}

/// What a target reports for a range: figures per key and span, the keys,
/// each key's quota now, and each tenant's function architecture (for the
/// price of its compute).
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    pub figures: Vec<Figures>,
    pub keys: Vec<KeyInfo>,
    /// By key id.
    pub quotas: std::collections::BTreeMap<String, QuotaNow>,
    /// By tenant: `x86_64` or `arm64`; x86_64 when unknown.
    pub arch: std::collections::BTreeMap<String, String>,
    /// Every alarm's current state.
    pub alarms: Vec<AlarmState>,
}

impl Gathered {
    /// Adds another target's figures (another cell's: its tenants are
    /// none of these).
    pub fn merge(&mut self, other: Gathered) {
        self.figures.extend(other.figures);
        self.keys.extend(other.keys);
        self.quotas.extend(other.quotas);
        self.arch.extend(other.arch);
        self.alarms.extend(other.alarms);
    }
}
