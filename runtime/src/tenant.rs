//! The tenant file (`tenants/<id>.toml`): its typed model here; how it is
//! read and checked in the submodules.
//!
//! Parsing happens in two steps. Serde maps the TOML onto `raw` structs
//! that reject unknown keys and wrong types; then `Tenant::from_raw`
//! (`parse`) checks the rules serde cannot express (a default that
//! breaks its own field's rules, an index on a boolean, ...), each field
//! built by `field_spec`. Both steps report the file, line, column and
//! key of each problem, what was expected and what was found. `set`
//! reads a directory and checks the rules across tenants.

use std::path::PathBuf;

use serde::Deserialize;

use crate::field::Field;
pub use crate::operation::Operation;

/// A quota period; boundaries are UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "DAY",
            Period::Week => "WEEK",
            Period::Month => "MONTH",
        }
    }
}

/// A client's whole API, as declared in one tenant file.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The file stem: `tenants/acme.toml` is tenant `acme`.
    pub id: String,
    pub path: PathBuf,
    pub display_name: String,
    pub description: Option<String>,
    pub stage: String,
    pub collection: Collection,
    pub functions: Functions,
    pub usage_plan: UsagePlan,
    pub domain: Option<Domain>,
    pub logs: Logs,
    pub clients: Vec<Client>,
    /// `[[alarms]]`, in file order.
    pub alarms: Vec<Alarm>,
    /// `[deploy]`: where the tenant's stack lives; nothing set means the
    /// command line's and the environment's settings.
    pub placement: Placement,
}

/// `[deploy]`: the AWS region and account (as a named AWS profile) a
/// tenant is deployed to. The function never reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Placement {
    pub region: Option<String>,
    /// A profile of the AWS config files (`~/.aws/config`,
    /// `AWS_CONFIG_FILE`), with its own credentials, `role_arn` or
    /// `endpoint_url`.
    pub profile: Option<String>,
}

impl Placement {
    /// Whether the file names no placement.
    pub fn is_default(&self) -> bool {
        self.region.is_none() && self.profile.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct Collection {
    /// The path segment, `/accounts`.
    pub name: String,
    /// The key attribute, server-generated (ULID) unless the client sends one.
    pub key: String,
    /// An existing table the tenant adopts (`[collection] table`) instead
    /// of the one apifactory would create ([`crate::names::table`]).
    pub table: Option<String>,
    /// In file order.
    pub fields: Vec<Field>,
}

impl Collection {
    /// The table the tenant's items live in: the adopted one, or the one
    /// apifactory creates for the tenant.
    pub fn table_name(&self, tenant: &str) -> String {
        self.table
            .clone()
            .unwrap_or_else(|| crate::names::table(tenant))
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn indexed(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.index)
    }
}

#[derive(Debug, Clone)]
pub struct Functions {
    /// Sorted, without duplicates.
    pub operations: Vec<Operation>,
    pub memory_mb: u32,
    pub timeout_s: u32,
}

impl Functions {
    pub fn enabled(&self, op: Operation) -> bool {
        self.operations.contains(&op)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsagePlan {
    /// Steady requests per second per key (the token bucket's refill rate).
    pub rate: f64,
    /// The bucket's size.
    pub burst: u32,
    pub quota: Option<Quota>,
    /// One bucket for every caller of the API together (`api_rate` and
    /// `api_burst`): the stage's default method throttling on AWS. `None`
    /// leaves the API limited only per key and by the account.
    pub api: Option<Throttle>,
}

/// A token bucket: `rate` requests per second refill it, `burst` is its size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    pub rate: f64,
    pub burst: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub period: Period,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub name: String,
    pub certificate_arn: String,
    /// Route 53 zone for an alias record, when given.
    pub hosted_zone_id: Option<String>,
    /// The base path mapping; empty maps the domain's root.
    pub base_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logs {
    pub retention_days: u32,
}

/// A health rule: `[[alarms]]` in the tenant file. On AWS a CloudWatch
/// alarm per rule (SNS topics in `notify`); locally `apifactory up`
/// evaluates it on its own figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    /// Unique in the tenant: 1 to 64 of a-z, 0-9 and -.
    pub name: String,
    pub metric: AlarmMetric,
    /// The alarm fires above this: a share (0 to 1) for `5xx_rate` and
    /// `quota_share`, milliseconds for `p99_latency_ms`.
    pub threshold: f64,
    /// The window, in minutes (1 to 1440; 5 when not given): the value is
    /// the window's (its 5xx share, its p99), as a CloudWatch alarm with
    /// one period this long evaluates it. Not used by `quota_share`.
    pub minutes: u32,
    /// SNS topic ARNs told of every change of state (AWS).
    pub notify: Vec<String>,
}

/// What an alarm watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum AlarmMetric {
    /// The share of requests answered 5xx (API Gateway's 5XXError,
    /// averaged).
    #[serde(rename = "5xx_rate")]
    ServerErrorRate,
    /// The 99th percentile of the gateway's latency, in milliseconds.
    #[serde(rename = "p99_latency_ms")]
    P99LatencyMs,
    /// The largest share of its quota any key has used in the current
    /// period (needs a quota).
    #[serde(rename = "quota_share")]
    QuotaShare,
}

impl AlarmMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmMetric::ServerErrorRate => "5xx_rate",
            AlarmMetric::P99LatencyMs => "p99_latency_ms",
            AlarmMetric::QuotaShare => "quota_share",
        }
    }
}

/// A client of the tenant's API, with its own API key. Identified by name,
/// never by position in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub name: String,
    pub description: Option<String>,
}

/// Retention periods CloudWatch Logs accepts.
pub const RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Query parameters the runtime reserves for paging; no field may use them.
pub const RESERVED_NAMES: [&str; 2] = ["limit", "next"];

/// Paths under the stage the gateway answers itself, on both targets: a
/// collection of that name would be shadowed by them. `/{stage}/docs` is
/// the API's developer portal.
pub const RESERVED_COLLECTIONS: [&str; 1] = ["docs"];

mod field_spec;
mod parse;
mod raw;
mod set;

pub use set::{check_set, load_dir};

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
