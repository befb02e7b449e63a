//! The tenant file (`tenants/<id>.toml`): its typed model, how it is parsed,
//! and every rule it must satisfy before anything is deployed from it.
//!
//! Parsing happens in two steps. Serde maps the TOML onto `raw` structs that
//! reject unknown keys and wrong types; then `Tenant::from_raw` checks the
//! rules serde cannot express (a default that breaks its own field's rules,
//! an index on a boolean, ...). Both steps report the file, line, column and
//! key of each problem, what was expected and what was found.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::field::{Auto, Field, Format, Kind, MAX_INDEXES, MAX_KEY_BYTES, Pattern, StringRules};
use crate::names;
use crate::tenant_error::{Source, TenantError, TenantErrors};

/// The five operations of a collection, one function each on AWS.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Search,
    Get,
    Add,
    Update,
    Delete,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::Search,
        Operation::Get,
        Operation::Add,
        Operation::Update,
        Operation::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Search => "search",
            Operation::Get => "get",
            Operation::Add => "add",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.as_str() == s)
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
}

#[derive(Debug, Clone)]
pub struct Collection {
    /// The path segment, `/accounts`.
    pub name: String,
    /// The key attribute, server-generated (ULID) unless the client sends one.
    pub key: String,
    /// In file order.
    pub fields: Vec<Field>,
}

impl Collection {
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

mod raw {
    //! The file as serde sees it. Every struct rejects unknown keys.
    use super::*;

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
}

impl Tenant {
    /// Reads and checks one tenant file.
    pub fn load(path: &Path) -> Result<Tenant, TenantErrors> {
        let text = read(path)?;
        Tenant::parse(path, &text)
    }

    /// Parses and checks the text of one tenant file; `path` names it in
    /// errors and gives the tenant id (its stem).
    pub fn parse(path: &Path, text: &str) -> Result<Tenant, TenantErrors> {
        Tenant::parse_with(path, text, true)
    }

    /// Reads the tenant file a function ships with (`tenant.toml` in its
    /// package): only what the function needs, so it may leave out the
    /// usage plan, domain, logs and clients.
    pub fn load_package(path: &Path) -> Result<Tenant, TenantErrors> {
        let text = read(path)?;
        Tenant::parse_package(path, &text)
    }

    /// Parses a function's tenant file (see `load_package`).
    pub fn parse_package(path: &Path, text: &str) -> Result<Tenant, TenantErrors> {
        Tenant::parse_with(path, text, false)
    }

    /// An error about one of this tenant's keys found after loading (a
    /// target found that what the key names does not exist or does not
    /// fit), pinned to the key's line and column in the file as it is now.
    pub fn key_error(
        &self,
        key: &str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> TenantError {
        // Unreadable now: the error still names the file and key.
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        Source::new(&self.path, &text).key(key, expected, found)
    }

    fn parse_with(path: &Path, text: &str, whole_file: bool) -> Result<Tenant, TenantErrors> {
        let src = Source::new(path, text);
        let raw: raw::File = toml::from_str(text).map_err(|e| serde_error(&src, &e))?;
        if whole_file && raw.usage_plan.is_none() {
            return Err(src
                .key("usage_plan", "a value for `usage_plan`", "nothing")
                .into());
        }
        Tenant::from_raw(&src, raw)
    }

    fn from_raw(src: &Source<'_>, raw: raw::File) -> Result<Tenant, TenantErrors> {
        let mut r = Report {
            src,
            errors: Vec::new(),
        };

        let id = src
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        if !names::is_tenant_id(&id) {
            r.errors.push(TenantError {
                path: src.path.to_owned(),
                line: 0,
                column: 0,
                key: String::new(),
                expected: format!(
                    "a file name whose stem is a tenant id (1 to {} characters of a-z, 0-9 and -, starting with a letter)",
                    names::TENANT_ID_MAX
                ),
                found: format!("{id:?}"),
            });
        }

        let stage = raw.tenant.stage.unwrap_or_else(|| "prod".to_owned());
        if !names::is_stage(&stage) {
            r.key(
                "tenant.stage",
                "a stage name of 1 to 128 letters, digits, - and _",
                format!("{stage:?}"),
            );
        }
        if raw.tenant.display_name.trim().is_empty() {
            r.key(
                "tenant.display_name",
                "a non-empty name",
                "an empty string".into(),
            );
        }

        // Collection.
        let c = raw.collection;
        if !names::is_collection(&c.name) {
            r.key(
                "collection.name",
                "a path segment of 1 to 63 characters of a-z, 0-9 and -, starting with a letter",
                format!("{:?}", c.name),
            );
        }
        let key = c.key.unwrap_or_else(|| "id".to_owned());
        if !names::is_field_name(&key) {
            r.key(
                "collection.key",
                "an attribute name of 1 to 64 letters, digits and _, starting with a letter",
                format!("{key:?}"),
            );
        }
        let mut fields = Vec::new();
        for (name, value) in c.fields {
            let path = format!("collection.fields.{name}");
            if !names::is_field_name(&name) || RESERVED_NAMES.contains(&name.as_str()) {
                r.key(
                    &path,
                    "a field name of 1 to 64 letters, digits and _, starting with a letter, other than `limit` and `next`",
                    format!("{name:?}"),
                );
                continue;
            }
            if name == key {
                r.key(
                    &path,
                    "no field with the key's name (the key is declared by `collection.key`)",
                    format!("a field named {name:?}"),
                );
                continue;
            }
            match field(name, value, &path) {
                Ok(f) => fields.push(f),
                Err(problems) => {
                    for (key, expected, found) in problems {
                        r.key(&key, &expected, found);
                    }
                }
            }
        }
        // `toml::Table` is sorted by key; keep the file's order for the
        // OpenAPI document and listings.
        fields.sort_by_key(|f| {
            src.key_offset(&format!("collection.fields.{}", f.name))
                .unwrap_or(usize::MAX)
        });
        // One DynamoDB global secondary index per indexed field.
        if let Some(extra) = fields.iter().filter(|f| f.index).nth(MAX_INDEXES) {
            let count = fields.iter().filter(|f| f.index).count();
            r.key(
                &format!("collection.fields.{}.index", extra.name),
                &format!(
                    "at most {MAX_INDEXES} indexed fields (DynamoDB allows {MAX_INDEXES} global secondary indexes per table)"
                ),
                format!(
                    "an index on `{}`, indexed field {} of {count}",
                    extra.name,
                    MAX_INDEXES + 1
                ),
            );
        }
        if fields.is_empty() && r.errors.is_empty() {
            r.key(
                "collection.fields",
                "at least one field",
                "an empty table".into(),
            );
        }

        // Functions.
        let f = raw.functions.unwrap_or(raw::FunctionsSection {
            operations: None,
            memory_mb: None,
            timeout_s: None,
        });
        let mut operations = f.operations.unwrap_or_else(|| Operation::ALL.to_vec());
        let set: BTreeSet<Operation> = operations.iter().copied().collect();
        if set.len() != operations.len() {
            r.key(
                "functions.operations",
                "each operation at most once",
                "a repeated operation".into(),
            );
        }
        if operations.is_empty() {
            r.key(
                "functions.operations",
                "at least one of search, get, add, update, delete",
                "an empty list".into(),
            );
        }
        operations = set.into_iter().collect();
        let memory_mb = f.memory_mb.unwrap_or(256);
        if !(128..=10240).contains(&memory_mb) {
            r.key(
                "functions.memory_mb",
                "a Lambda memory size from 128 to 10240 MB",
                memory_mb.to_string(),
            );
        }
        let timeout_s = f.timeout_s.unwrap_or(10);
        if !(1..=29).contains(&timeout_s) {
            r.key(
                "functions.timeout_s",
                "1 to 29 seconds (API Gateway's integration timeout is 29 s)",
                timeout_s.to_string(),
            );
        }

        // Usage plan (a function's package leaves it out: the gateway
        // enforces it, not the function).
        let u = raw.usage_plan.unwrap_or(raw::UsagePlanSection {
            rate: 1.0,
            burst: 1,
            api_rate: None,
            api_burst: None,
            quota: None,
        });
        if !(u.rate.is_finite() && u.rate > 0.0 && u.rate <= 10_000.0) {
            r.key(
                "usage_plan.rate",
                "requests per second above 0 and at most 10000 (the account limit)",
                u.rate.to_string(),
            );
        }
        if u.burst == 0 || u.burst > 5_000 {
            r.key(
                "usage_plan.burst",
                "a bucket size from 1 to 5000 (the account limit)",
                u.burst.to_string(),
            );
        }
        let api = api_throttle(&mut r, &u);
        let quota = u.quota.map(|q| Quota {
            limit: q.limit,
            period: q.period,
        });
        if let Some(q) = quota
            && (q.limit == 0 || q.limit > i32::MAX as u64)
        {
            r.key(
                "usage_plan.quota.limit",
                "a quota from 1 to 2147483647 requests",
                q.limit.to_string(),
            );
        }

        // Domain.
        let domain = raw.domain.map(|d| {
            let name = d.name.to_ascii_lowercase();
            if !names::is_domain(&name) {
                r.key(
                    "domain.name",
                    "a fully qualified domain name such as api.example.com",
                    format!("{:?}", d.name),
                );
            }
            if !names::is_certificate_arn(&d.certificate_arn) {
                r.key(
                    "domain.certificate_arn",
                    "an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)",
                    format!("{:?}", d.certificate_arn),
                );
            }
            if let Some(zone) = &d.hosted_zone_id
                && !names::is_hosted_zone_id(zone)
            {
                r.key(
                    "domain.hosted_zone_id",
                    "a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ",
                    format!("{zone:?}"),
                );
            }
            let base_path = d.base_path.unwrap_or_default();
            if !base_path.is_empty() && !names::is_collection(&base_path) {
                r.key(
                    "domain.base_path",
                    "a base path of a-z, 0-9 and - without slashes, or none",
                    format!("{base_path:?}"),
                );
            }
            Domain {
                name,
                certificate_arn: d.certificate_arn,
                hosted_zone_id: d.hosted_zone_id,
                base_path,
            }
        });

        let retention_days = raw.logs.map_or(30, |l| l.retention_days);
        if !RETENTION_DAYS.contains(&retention_days) {
            r.key(
                "logs.retention_days",
                "a CloudWatch Logs retention (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653 days)",
                retention_days.to_string(),
            );
        }

        let mut clients: Vec<Client> = Vec::new();
        for (i, c) in raw.clients.into_iter().enumerate() {
            let key = format!("clients[{i}].name");
            if !names::is_client_name(&c.name) {
                r.key(
                    &key,
                    "a client name of 1 to 63 characters of a-z, 0-9 and -, starting with a letter or digit",
                    format!("{:?}", c.name),
                );
            } else if clients.iter().any(|o| o.name == c.name) {
                r.key(
                    &key,
                    "a client name used once per tenant",
                    format!("a second client named {:?}", c.name),
                );
            }
            clients.push(Client {
                name: c.name,
                description: c.description,
            });
        }

        if !r.errors.is_empty() {
            return Err(TenantErrors(r.errors));
        }
        Ok(Tenant {
            id,
            path: src.path.to_owned(),
            display_name: raw.tenant.display_name,
            description: raw.tenant.description,
            stage,
            collection: Collection {
                name: c.name,
                key,
                fields,
            },
            functions: Functions {
                operations,
                memory_mb,
                timeout_s,
            },
            usage_plan: UsagePlan {
                rate: u.rate,
                burst: u.burst,
                quota,
                api,
            },
            domain,
            logs: Logs { retention_days },
            clients,
        })
    }
}

/// The optional API-wide bucket. AWS would take a stage limit below one
/// key's rate, but then no key could ever reach its own rate, so the file
/// says which number to lower instead.
fn api_throttle(r: &mut Report<'_>, u: &raw::UsagePlanSection) -> Option<Throttle> {
    let (rate, burst) = match (u.api_rate, u.api_burst) {
        (None, None) => return None,
        (Some(rate), Some(burst)) => (rate, burst),
        (Some(_), None) => {
            r.key(
                "usage_plan.api_rate",
                "`api_rate` together with `api_burst` (the API-wide bucket needs both)",
                "`api_rate` alone".into(),
            );
            return None;
        }
        (None, Some(_)) => {
            r.key(
                "usage_plan.api_burst",
                "`api_burst` together with `api_rate` (the API-wide bucket needs both)",
                "`api_burst` alone".into(),
            );
            return None;
        }
    };
    let mut ok = true;
    if !(rate.is_finite() && rate > 0.0 && rate <= 10_000.0) {
        r.key(
            "usage_plan.api_rate",
            "requests per second above 0 and at most 10000 (the account limit)",
            rate.to_string(),
        );
        ok = false;
    } else if rate < u.rate {
        r.key(
            "usage_plan.api_rate",
            &format!(
                "at least `usage_plan.rate` ({}): every caller shares the API-wide bucket, so a key could never reach its own rate",
                u.rate
            ),
            rate.to_string(),
        );
        ok = false;
    }
    if burst == 0 || burst > 5_000 {
        r.key(
            "usage_plan.api_burst",
            "a bucket size from 1 to 5000 (the account limit)",
            burst.to_string(),
        );
        ok = false;
    } else if burst < u.burst {
        r.key(
            "usage_plan.api_burst",
            &format!(
                "at least `usage_plan.burst` ({}): every caller shares the API-wide bucket, so a key could never use its own burst",
                u.burst
            ),
            burst.to_string(),
        );
        ok = false;
    }
    ok.then_some(Throttle { rate, burst })
}

/// A tenant file's text, or why it cannot be read.
fn read(path: &Path) -> Result<String, TenantError> {
    std::fs::read_to_string(path).map_err(|e| TenantError {
        path: path.to_owned(),
        line: 0,
        column: 0,
        key: String::new(),
        expected: "a readable UTF-8 file".into(),
        found: e.to_string(),
    })
}

type Problems = Vec<(String, String, String)>;

/// Builds one field from its spec, checking the rules against the type.
fn field(name: String, s: raw::FieldSection, path: &str) -> Result<Field, Problems> {
    use raw::KindName as K;
    let mut problems: Problems = Vec::new();
    let mut bad = |key: &str, expected: String, found: String| {
        problems.push((format!("{path}.{key}"), expected, found));
    };
    let type_name = match s.kind {
        K::String => "string",
        K::Integer => "integer",
        K::Number => "number",
        K::Boolean => "boolean",
        K::Timestamp => "timestamp",
        K::StringList => "string_list",
    };
    let not_for = |rule: &str, applies: &str| {
        (
            rule.to_owned(),
            format!("`{rule}` only on {applies} fields"),
            format!("`{rule}` on {} field", a_or_an(type_name)),
        )
    };
    let stringy = matches!(s.kind, K::String | K::StringList);
    let mut misplaced = Vec::new();
    if !stringy {
        for (rule, set) in [
            ("min_length", s.min_length.is_some()),
            ("max_length", s.max_length.is_some()),
            ("pattern", s.pattern.is_some()),
            ("enum", s.allowed.is_some()),
        ] {
            if set {
                misplaced.push(not_for(rule, "string and string_list"));
            }
        }
    }
    if s.kind != K::String && s.format.is_some() {
        misplaced.push(not_for("format", "string"));
    }
    if !matches!(s.kind, K::Integer | K::Number) {
        for (rule, set) in [("min", s.min.is_some()), ("max", s.max.is_some())] {
            if set {
                misplaced.push(not_for(rule, "integer and number"));
            }
        }
    }
    if s.kind != K::StringList && s.max_items.is_some() {
        misplaced.push(not_for("max_items", "string_list"));
    }
    if s.kind != K::Timestamp && s.auto.is_some() {
        misplaced.push(not_for("auto", "timestamp"));
    }
    for (key, expected, found) in misplaced {
        bad(&key, expected, found);
    }

    let pattern = match s.pattern.as_deref().map(Pattern::new) {
        Some(Err(e)) => {
            bad(
                "pattern",
                "a regular expression".into(),
                format!("{:?} ({e})", s.pattern.as_deref().unwrap_or_default()),
            );
            None
        }
        Some(Ok(p)) => Some(p),
        None => None,
    };
    // An indexed string is an index key, which DynamoDB refuses empty or
    // over 2,048 bytes: a file may not allow either (1 is implied as the
    // least length), and the API refuses both on every store.
    let string_key = s.index == Some(true) && s.kind == K::String;
    let min_length = match s.min_length {
        Some(0) if string_key => {
            bad(
                "min_length",
                "a min_length of at least 1 on an indexed field (an index key cannot be empty), or none (1 is implied)".into(),
                "0".into(),
            );
            Some(1)
        }
        None if string_key => Some(1),
        other => other,
    };
    if string_key
        && let Some(max) = s.max_length
        && max as usize > MAX_KEY_BYTES
    {
        bad(
            "max_length",
            format!(
                "a max_length of at most {MAX_KEY_BYTES} on an indexed field (an index key is at most {MAX_KEY_BYTES} bytes)"
            ),
            max.to_string(),
        );
    }
    if string_key
        && let Some(allowed) = &s.allowed
        && allowed.iter().any(String::is_empty)
    {
        bad(
            "enum",
            "no empty string in the enum of an indexed field (an index key cannot be empty)".into(),
            "\"\"".into(),
        );
    }
    if let (Some(min), Some(max)) = (min_length, s.max_length)
        && min > max
    {
        bad(
            "min_length",
            format!("at most max_length ({max})"),
            min.to_string(),
        );
    }
    if let Some(allowed) = &s.allowed
        && allowed.is_empty()
    {
        bad("enum", "at least one value".into(), "an empty list".into());
    }
    let rules = StringRules {
        min_length,
        max_length: s.max_length,
        pattern,
        allowed: s.allowed.clone(),
        format: s.format.map(|f| match f {
            raw::FormatName::Email => Format::Email,
            raw::FormatName::Uri => Format::Uri,
            raw::FormatName::DateTime => Format::DateTime,
        }),
    };
    let int_bound =
        |key: &str, v: &Option<toml::Value>, bad: &mut dyn FnMut(&str, String, String)| match v {
            None => None,
            Some(toml::Value::Integer(i)) => Some(*i),
            Some(other) => {
                bad(key, "an integer".into(), toml_type(other).into());
                None
            }
        };
    let num_bound =
        |key: &str, v: &Option<toml::Value>, bad: &mut dyn FnMut(&str, String, String)| match v {
            None => None,
            Some(toml::Value::Integer(i)) => Some(*i as f64),
            Some(toml::Value::Float(f)) if f.is_finite() => Some(*f),
            Some(other) => {
                bad(key, "a number".into(), toml_type(other).into());
                None
            }
        };
    let kind = match s.kind {
        K::String => Kind::String(rules),
        K::Integer => {
            let min = int_bound("min", &s.min, &mut bad);
            let max = int_bound("max", &s.max, &mut bad);
            if let (Some(a), Some(b)) = (min, max)
                && a > b
            {
                bad("min", format!("at most max ({b})"), a.to_string());
            }
            Kind::Integer { min, max }
        }
        K::Number => {
            let min = num_bound("min", &s.min, &mut bad);
            let max = num_bound("max", &s.max, &mut bad);
            if let (Some(a), Some(b)) = (min, max)
                && a > b
            {
                bad("min", format!("at most max ({b})"), a.to_string());
            }
            Kind::Number { min, max }
        }
        K::Boolean => Kind::Boolean,
        K::Timestamp => Kind::Timestamp,
        K::StringList => Kind::StringList {
            max_items: s.max_items,
            item: rules,
        },
    };
    let index = s.index.unwrap_or(false);
    if index && !kind.indexable() {
        bad(
            "index",
            "an index only on string, integer, number or timestamp fields".into(),
            format!("an index on {} field", a_or_an(type_name)),
        );
    }
    let auto = s.auto.map(|a| match a {
        raw::AutoName::Create => Auto::Create,
        raw::AutoName::Update => Auto::Update,
    });
    let required = s.required.unwrap_or(false);
    if auto.is_some() && (required || s.default.is_some()) {
        bad(
            "auto",
            "an auto field that is neither required nor defaulted (the server sets it)".into(),
            "auto with required or default".into(),
        );
    }
    let mut f = Field {
        name,
        kind,
        required,
        index,
        default: None,
        auto,
        description: s.description,
    };
    if let Some(default) = s.default {
        let value = toml_to_json(&default);
        match f.check(&value) {
            Ok(()) => f.default = Some(value),
            Err(e) => {
                let (must, found) = e
                    .rsplit_once(", found ")
                    .map(|(m, f)| (m.to_owned(), f.to_owned()))
                    .unwrap_or_else(|| (e.clone(), default.to_string()));
                bad(
                    "default",
                    format!("a default valid for the field (it {must})"),
                    found,
                )
            }
        }
    }
    if problems.is_empty() {
        Ok(f)
    } else {
        Err(problems)
    }
}

fn a_or_an(word: &str) -> String {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {word}")
    } else {
        format!("a {word}")
    }
}

fn toml_type(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a TOML date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// Turns a serde error into expected/found, pointing at its key.
fn serde_error(src: &Source<'_>, e: &toml::de::Error) -> TenantErrors {
    let span = e.span().unwrap_or(0..0);
    let message = e.message();
    let syntax = toml::de::DeTable::parse(src.text).is_err();
    let mut key = src.key_at(&span).unwrap_or_default();
    let (expected, found) = if syntax {
        let (expected, found) = split_message(message);
        (format!("valid TOML syntax ({expected})"), found)
    } else if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        key = src.table_at(&span);
        key = if key.is_empty() {
            name.to_owned()
        } else {
            format!("{key}.{name}")
        };
        (format!("a value for `{name}`"), "nothing".to_owned())
    } else if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or_default();
        let expected = rest
            .split_once("expected ")
            .map(|(_, e)| e.trim_start_matches("one of ").replace('`', ""))
            .unwrap_or_else(|| "no other keys".into());
        (
            format!("one of the known keys ({expected})"),
            format!("unknown key `{name}`"),
        )
    } else if message.contains("expected") {
        let (expected, found) = split_message(message);
        (expected, found)
    } else if span.is_empty() {
        ("valid TOML".to_owned(), message.trim().to_owned())
    } else {
        (
            format!("valid TOML ({})", message.trim()),
            format!("`{}`", src.snippet(&span)),
        )
    };
    src.at(span, &key, expected, found).into()
}

/// Splits serde's "invalid type: string \"x\", expected u32" style messages.
fn split_message(message: &str) -> (String, String) {
    let message = message.trim();
    if let Some((head, expected)) = message.rsplit_once(", expected ") {
        let found = head
            .strip_prefix("invalid type: ")
            .or_else(|| head.strip_prefix("invalid value: "))
            .or_else(|| head.strip_prefix("unknown variant "))
            .unwrap_or(head);
        (
            plain_expected(expected).replace('`', ""),
            found.replace('`', "\""),
        )
    } else {
        (message.to_owned(), "something else".to_owned())
    }
}

/// Serde names Rust types; say what a tenant author would.
fn plain_expected(expected: &str) -> String {
    match expected {
        "u32" | "u64" => "a non-negative integer".to_owned(),
        "f64" => "a number".to_owned(),
        "a boolean" | "bool" => "true or false".to_owned(),
        "a string" => "a string".to_owned(),
        other => other.to_owned(),
    }
}

/// Reads every `*.toml` file in a directory, checks each, then checks the
/// set (no two tenants may claim the same domain). Returns the tenants sorted
/// by id, or every problem found in every file.
pub fn load_dir(dir: &Path) -> Result<Vec<Tenant>, TenantErrors> {
    let entries = std::fs::read_dir(dir).map_err(|e| TenantError {
        path: dir.to_owned(),
        line: 0,
        column: 0,
        key: String::new(),
        expected: "a directory of tenant files".into(),
        found: e.to_string(),
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    let mut tenants = Vec::new();
    let mut errors = Vec::new();
    for path in &paths {
        match Tenant::load(path) {
            Ok(t) => tenants.push(t),
            Err(e) => errors.extend(e.0),
        }
    }
    errors.extend(check_set(&tenants).0);
    if errors.is_empty() {
        Ok(tenants)
    } else {
        Err(TenantErrors(errors))
    }
}

/// Rules across tenants: each custom domain and each derived AWS resource
/// name belongs to one tenant only.
pub fn check_set(tenants: &[Tenant]) -> TenantErrors {
    let mut errors = Vec::new();
    let mut domains: BTreeMap<&str, &Tenant> = BTreeMap::new();
    let mut resource_names: BTreeMap<String, &Tenant> = BTreeMap::new();
    for t in tenants {
        if let Some(d) = &t.domain {
            if let Some(other) = domains.get(d.name.as_str()) {
                let text = std::fs::read_to_string(&t.path).unwrap_or_default();
                let src = Source::new(&t.path, &text);
                errors.push(src.key(
                    "domain.name",
                    "a domain no other tenant claims",
                    format!("{:?}, already claimed by {}", d.name, other.path.display()),
                ));
            } else {
                domains.insert(&d.name, t);
            }
        }
        for name in names::all(t) {
            if let Some(other) = resource_names.get(&name)
                && other.id != t.id
            {
                errors.push(TenantError {
                    path: t.path.clone(),
                    line: 0,
                    column: 0,
                    key: String::new(),
                    expected: "resource names no other tenant uses".into(),
                    found: format!("{name:?}, also derived from {}", other.path.display()),
                });
            } else {
                resource_names.insert(name, t);
            }
        }
    }
    TenantErrors(errors)
}

/// Collects problems found after parsing, each pinned to its key.
struct Report<'s> {
    src: &'s Source<'s>,
    errors: Vec<TenantError>,
}

impl Report<'_> {
    fn key(&mut self, key: &str, expected: &str, found: String) {
        self.errors.push(self.src.key(key, expected, found));
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
