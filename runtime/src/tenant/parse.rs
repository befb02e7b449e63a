//! Reading a tenant file: serde maps the TOML onto `raw`
//! structs, then `Tenant::from_raw` checks the rules serde cannot express
//! and builds the model, every problem pinned to its key.

use std::collections::BTreeSet;
use std::path::Path;

use super::field_spec::field;
use super::raw;
use super::{
    Alarm, AlarmMetric, Client, Collection, Domain, Functions, Logs, Operation, Quota,
    RESERVED_COLLECTIONS, RESERVED_NAMES, RETENTION_DAYS, Tenant, Throttle, UsagePlan,
};
use crate::field::MAX_INDEXES;
use crate::names;
use crate::tenant_error::{Source, TenantError, TenantErrors};

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
        } else if RESERVED_COLLECTIONS.contains(&c.name.as_str()) {
            r.key(
                "collection.name",
                "a collection name other than `docs` (`/{stage}/docs` serves the API's developer portal)",
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
        if let Some(table) = &c.table
            && !names::is_table_name(table)
        {
            r.key(
                "collection.table",
                "the name of an existing DynamoDB table: 3 to 255 characters of a-z, A-Z, 0-9, _, - and .",
                format!("{table:?}"),
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

        let alarms = alarms(&mut r, raw.alarms, quota.is_some());
        let placement = placement(&mut r, raw.deploy);

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
                table: c.table,
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
            alarms,
            placement,
        })
    }
}

/// `[deploy]`: the shapes of its names. Whether the profile exists is
/// `validate`'s to check: the function reading its package has no AWS
/// config files.
fn placement(r: &mut Report<'_>, raw: Option<raw::DeploySection>) -> super::Placement {
    let Some(d) = raw else {
        return super::Placement::default();
    };
    if let Some(region) = &d.region
        && !names::is_region(region)
    {
        r.key(
            "deploy.region",
            "an AWS region name such as eu-west-1 or us-gov-west-1",
            format!("{region:?}"),
        );
    }
    if let Some(profile) = &d.profile
        && !names::is_profile_name(profile)
    {
        r.key(
            "deploy.profile",
            "an AWS profile name (letters, digits, -, _, . and no spaces)",
            format!("{profile:?}"),
        );
    }
    super::Placement {
        region: d.region,
        profile: d.profile,
    }
}

/// `[[alarms]]`, each checked: its name, threshold, window and topics.
fn alarms(r: &mut Report<'_>, raw: Vec<raw::AlarmSection>, has_quota: bool) -> Vec<Alarm> {
    let mut out: Vec<Alarm> = Vec::new();
    for (i, a) in raw.into_iter().enumerate() {
        let at = |k: &str| format!("alarms[{i}].{k}");
        if !names::is_alarm_name(&a.name) {
            r.key(
                &at("name"),
                "an alarm name of 1 to 64 characters of a-z, 0-9 and -, starting with a letter",
                format!("{:?}", a.name),
            );
        } else if out.iter().any(|o| o.name == a.name) {
            r.key(
                &at("name"),
                "an alarm name used once per tenant",
                format!("a second alarm named {:?}", a.name),
            );
        }
        let share = matches!(
            a.metric,
            AlarmMetric::ServerErrorRate | AlarmMetric::QuotaShare
        );
        let fits = if share {
            a.threshold > 0.0 && a.threshold <= 1.0
        } else {
            a.threshold > 0.0 && a.threshold <= 30_000.0
        };
        if !fits || !a.threshold.is_finite() {
            r.key(
                &at("threshold"),
                if share {
                    "a share above 0 and at most 1 (0.05 is 5 %)"
                } else {
                    "milliseconds above 0 and at most 30000"
                },
                a.threshold.to_string(),
            );
        }
        if a.metric == AlarmMetric::QuotaShare && !has_quota {
            r.key(
                &at("metric"),
                "a metric the tenant has: quota_share needs usage_plan.quota",
                "\"quota_share\" without a quota".into(),
            );
        }
        let minutes = a.minutes.unwrap_or(5);
        if !(1..=1440).contains(&minutes) {
            r.key(&at("minutes"), "1 to 1440 minutes", minutes.to_string());
        }
        for (j, topic) in a.notify.iter().enumerate() {
            if !names::is_sns_topic_arn(topic) {
                r.key(
                    &format!("alarms[{i}].notify[{j}]"),
                    "an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>)",
                    format!("{topic:?}"),
                );
            }
        }
        out.push(Alarm {
            name: a.name,
            metric: a.metric,
            threshold: a.threshold,
            minutes,
            notify: a.notify,
        });
    }
    out
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

/// Collects problems found after parsing, each pinned to its key.
pub(super) struct Report<'s> {
    src: &'s Source<'s>,
    errors: Vec<TenantError>,
}

impl Report<'_> {
    fn key(&mut self, key: &str, expected: &str, found: String) {
        self.errors.push(self.src.key(key, expected, found));
    }
}
