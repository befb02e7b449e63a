//! The file as serde sees it. Every struct rejects unknown keys.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{AlarmMetric, Operation, Period};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub tenant: TenantSection,
    pub collection: CollectionSection,
    #[serde(default)]
    pub functions: Option<FunctionsSection>,
    pub usage_plan: Option<UsagePlanSection>,
    pub domain: Option<DomainSection>,
    pub logs: Option<LogsSection>,
    #[serde(default)]
    pub clients: Vec<ClientSection>,
    #[serde(default)]
    pub alarms: Vec<AlarmSection>,
    pub deploy: Option<DeploySection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySection {
    pub region: Option<String>,
    pub profile: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSection {
    pub display_name: String,
    pub description: Option<String>,
    pub stage: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionSection {
    pub name: String,
    pub key: Option<String>,
    pub table: Option<String>,
    pub fields: BTreeMap<String, FieldSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSection {
    #[serde(rename = "type")]
    pub kind: KindName,
    pub required: Option<bool>,
    pub index: Option<bool>,
    pub default: Option<toml::Value>,
    pub auto: Option<AutoName>,
    pub description: Option<String>,
    pub min_length: Option<u32>,
    pub max_length: Option<u32>,
    pub pattern: Option<String>,
    #[serde(rename = "enum")]
    pub allowed: Option<Vec<String>>,
    pub format: Option<FormatName>,
    pub min: Option<toml::Value>,
    pub max: Option<toml::Value>,
    pub max_items: Option<u32>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KindName {
    String,
    Integer,
    Number,
    Boolean,
    Timestamp,
    StringList,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum AutoName {
    Create,
    Update,
}

#[derive(Deserialize, Clone, Copy)]
pub enum FormatName {
    #[serde(rename = "email")]
    Email,
    #[serde(rename = "uri")]
    Uri,
    #[serde(rename = "date-time")]
    DateTime,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionsSection {
    pub operations: Option<Vec<Operation>>,
    pub memory_mb: Option<u32>,
    pub timeout_s: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsagePlanSection {
    pub rate: f64,
    pub burst: u32,
    pub api_rate: Option<f64>,
    pub api_burst: Option<u32>,
    pub quota: Option<QuotaSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSection {
    pub limit: u64,
    pub period: Period,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSection {
    pub name: String,
    pub certificate_arn: String,
    pub hosted_zone_id: Option<String>,
    pub base_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsSection {
    pub retention_days: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    pub name: String,
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmSection {
    pub name: String,
    pub metric: AlarmMetric,
    pub threshold: f64,
    pub minutes: Option<u32>,
    #[serde(default)]
    pub notify: Vec<String>,
}
