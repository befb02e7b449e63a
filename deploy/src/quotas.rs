//! AWS's resource quotas, checked before an apply: what the account holds
//! now, plus what the plan creates, minus what it deletes, against each
//! limit. Over a limit AWS will not raise, the plan is refused (so no
//! apply stops half-way, with some tenants made and others not); over an
//! adjustable default, or within 10 % of any limit, it warns.
//!
//! Pure: the target reads the counts (an [`Account`]), the planner hands
//! over its steps, and [`check`] does the arithmetic. The limits are one
//! table, [`Quota`], each with the AWS page it comes from; the only other
//! source is the account itself (IAM's `RolesQuota`), and, for tests only,
//! the `APIFACTORY_TEST_QUOTAS` variable ([`Limits::from_env`]).
//!
//! About 600 lines (its unit tests are in `quotas/tests.rs`): the table,
//! the arithmetic and the lines it prints are one idea.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::resource::{Address, Attrs, Kind};

/// The variable that lowers (or raises) limits, for tests only: a run
/// against moto needs a limit it can reach with a few tenants. Its form is
/// `rest_apis=3,api_keys=10` (the names of [`Quota::key`]). A real deploy
/// has no reason to set it: AWS enforces its own limits whatever it says.
pub const TEST_OVERRIDE: &str = "APIFACTORY_TEST_QUOTAS";

/// What share of a limit starts a warning: 90 %, in tenths.
const NEAR_TENTHS: u64 = 9;

/// API Gateway's quotas for configuring and running a REST API (regional
/// REST APIs, API keys, public custom domain names).
const APIGW_REST_PAGE: &str = "https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-execution-service-limits-table.html";
/// API Gateway's account-level quotas (usage plans, usage plans per key).
const APIGW_PAGE: &str = "https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html";
/// "IAM and AWS STS quotas" (roles per account).
const IAM_PAGE: &str = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html";
/// "Quotas in Amazon DynamoDB", secondary indexes.
const DYNAMODB_PAGE: &str =
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html";

/// A quota apifactory checks. The figures are AWS's defaults, as
/// /work/shared/FACTS.md and the page each cites give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quota {
    /// "Regional APIs per Region: 600, cannot be increased" (edge-optimized
    /// and private APIs have quotas of their own; apifactory makes regional
    /// ones only). One REST API per tenant caps a region at 600 tenants.
    RestApis,
    /// "Usage plans per account per Region: 300", can be increased.
    UsagePlans,
    /// "API keys per account per Region: 10,000, cannot be increased".
    ApiKeys,
    /// "Public custom domain names per account per Region: 120", can be
    /// increased (private ones have a quota of their own).
    DomainNames,
    /// "Roles in an AWS account: 1,000", can be increased (to 5,000). IAM
    /// is global: every region of the account shares it. The account
    /// reports its own quota (GetAccountSummary `RolesQuota`), which then
    /// replaces the default and is as hard as a fixed one.
    Roles,
    /// "Global secondary indexes per table: 20" (a default quota AWS can
    /// raise on request). The tenant file already refuses a 21st indexed
    /// field (`runtime::field::MAX_INDEXES`); this is the second line.
    IndexesPerTable,
    /// "Usage plans per API key: 10" (FACTS.md; counted as adjustable, so
    /// it only ever warns: apifactory puts each key in its tenant's one
    /// plan, so it takes a key made by hand in other plans to come near).
    UsagePlansPerKey,
}

impl Quota {
    pub const ALL: [Quota; 7] = [
        Quota::RestApis,
        Quota::UsagePlans,
        Quota::ApiKeys,
        Quota::DomainNames,
        Quota::Roles,
        Quota::IndexesPerTable,
        Quota::UsagePlansPerKey,
    ];

    /// Its name in [`TEST_OVERRIDE`] and in `--json`.
    pub fn key(self) -> &'static str {
        match self {
            Quota::RestApis => "rest_apis",
            Quota::UsagePlans => "usage_plans",
            Quota::ApiKeys => "api_keys",
            Quota::DomainNames => "domain_names",
            Quota::Roles => "roles",
            Quota::IndexesPerTable => "indexes_per_table",
            Quota::UsagePlansPerKey => "usage_plans_per_key",
        }
    }

    /// What it limits, in words.
    pub fn label(self) -> &'static str {
        match self {
            Quota::RestApis => "regional REST APIs per region",
            Quota::UsagePlans => "usage plans per region",
            Quota::ApiKeys => "API keys per region",
            Quota::DomainNames => "custom domain names per region",
            Quota::Roles => "IAM roles per account (all regions)",
            Quota::IndexesPerTable => "global secondary indexes per table",
            Quota::UsagePlansPerKey => "usage plans per API key",
        }
    }

    pub fn default_limit(self) -> u64 {
        match self {
            Quota::RestApis => 600,
            Quota::UsagePlans => 300,
            Quota::ApiKeys => 10_000,
            Quota::DomainNames => 120,
            Quota::Roles => 1_000,
            Quota::IndexesPerTable => 20,
            Quota::UsagePlansPerKey => 10,
        }
    }

    /// Whether AWS raises it for an account on request.
    pub fn adjustable(self) -> bool {
        !matches!(self, Quota::RestApis | Quota::ApiKeys)
    }

    /// The AWS page that documents it.
    pub fn source(self) -> &'static str {
        match self {
            Quota::RestApis | Quota::ApiKeys | Quota::DomainNames => APIGW_REST_PAGE,
            Quota::UsagePlans | Quota::UsagePlansPerKey => APIGW_PAGE,
            Quota::Roles => IAM_PAGE,
            Quota::IndexesPerTable => DYNAMODB_PAGE,
        }
    }

    /// The resource kind that counts against an account-wide quota (none
    /// for the quotas of one table or one key).
    pub fn kind(self) -> Option<Kind> {
        match self {
            Quota::RestApis => Some(Kind::Api),
            Quota::UsagePlans => Some(Kind::UsagePlan),
            Quota::ApiKeys => Some(Kind::ApiKey),
            Quota::DomainNames => Some(Kind::Domain),
            Quota::Roles => Some(Kind::Role),
            Quota::IndexesPerTable | Quota::UsagePlansPerKey => None,
        }
    }

    fn parse(key: &str) -> Option<Quota> {
        Quota::ALL.into_iter().find(|q| q.key() == key)
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Where a limit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitFrom {
    /// AWS's documented default ([`Quota::source`]).
    Default,
    /// The account's own figure (IAM's `RolesQuota`): what AWS enforces.
    Account,
    /// [`TEST_OVERRIDE`].
    TestOverride,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limit {
    pub value: u64,
    pub from: LimitFrom,
    /// An apply that goes past it fails at AWS: the quota cannot be
    /// raised, or the account reported the quota it has.
    pub hard: bool,
}

/// The limit of each quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits(BTreeMap<Quota, Limit>);

impl Default for Limits {
    fn default() -> Limits {
        Limits::aws()
    }
}

impl Limits {
    /// AWS's defaults.
    pub fn aws() -> Limits {
        Limits(
            Quota::ALL
                .into_iter()
                .map(|q| {
                    let limit = Limit {
                        value: q.default_limit(),
                        from: LimitFrom::Default,
                        hard: !q.adjustable(),
                    };
                    (q, limit)
                })
                .collect(),
        )
    }

    /// AWS's defaults, with [`TEST_OVERRIDE`] applied when it is set. For
    /// tests only: see [`TEST_OVERRIDE`].
    pub fn from_env() -> Result<Limits, String> {
        let mut limits = Limits::aws();
        if let Ok(text) = std::env::var(TEST_OVERRIDE) {
            limits.override_with(&text)?;
        }
        Ok(limits)
    }

    /// Applies `name=value,...` ([`TEST_OVERRIDE`]'s form). A limit set so
    /// keeps whether it is hard: only its figure changes.
    pub fn override_with(&mut self, text: &str) -> Result<(), String> {
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let names = || {
                Quota::ALL
                    .iter()
                    .map(|q| q.key())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{TEST_OVERRIDE}: expected name=number, found {part:?}"))?;
            let quota = Quota::parse(key.trim()).ok_or_else(|| {
                format!(
                    "{TEST_OVERRIDE}: unknown quota {:?} (one of {})",
                    key.trim(),
                    names()
                )
            })?;
            let value: u64 = value.trim().parse().map_err(|_| {
                format!(
                    "{TEST_OVERRIDE}: {}: expected a whole number, found {:?}",
                    quota.key(),
                    value.trim()
                )
            })?;
            let limit = self.get_mut(quota);
            limit.value = value;
            limit.from = LimitFrom::TestOverride;
        }
        Ok(())
    }

    /// The quota the account reports for itself: AWS enforces exactly it.
    /// A test override stays.
    pub fn from_account(&mut self, quota: Quota, value: u64) {
        let limit = self.get_mut(quota);
        limit.hard = true;
        if limit.from != LimitFrom::TestOverride {
            limit.value = value;
            limit.from = LimitFrom::Account;
        }
    }

    pub fn get(&self, quota: Quota) -> Limit {
        self.0.get(&quota).copied().unwrap_or(Limit {
            value: quota.default_limit(),
            from: LimitFrom::Default,
            hard: !quota.adjustable(),
        })
    }

    fn get_mut(&mut self, quota: Quota) -> &mut Limit {
        let fallback = self.get(quota);
        self.0.entry(quota).or_insert(fallback)
    }
}

/// What a target knows of the account's quotas: the limits, and what the
/// account holds against each account-wide one (all of it, apifactory's
/// or not, since AWS's quota counts all of it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Account {
    pub limits: Limits,
    pub counts: BTreeMap<Quota, u64>,
    /// Account-wide quotas the target could not count, and why.
    pub not_counted: BTreeMap<Quota, String>,
}

/// A step of the plan, as far as counting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Within 10 % of the limit.
    Near,
    /// Over an adjustable default (AWS refuses unless the account's quota
    /// was raised), or over any limit without adding to it.
    Over,
    /// Over a hard limit, and the plan adds to it: not applied.
    Refused,
}

/// One quota, counted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub quota: Quota,
    pub what: &'static str,
    /// The table or key a per-resource quota was counted for (the one
    /// nearest its limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of: Option<String>,
    pub existing: u64,
    pub creates: u64,
    pub deletes: u64,
    /// existing + creates - deletes.
    pub projected: u64,
    pub limit: u64,
    pub limit_from: LimitFrom,
    pub hard: bool,
    pub adjustable: bool,
    /// AWS's page for the quota.
    pub source: &'static str,
    pub status: Status,
}

impl Check {
    fn new(quota: Quota, limit: Limit, of: Option<String>, counts: [u64; 3]) -> Check {
        let [existing, creates, deletes] = counts;
        let projected = (existing + creates).saturating_sub(deletes);
        let status = if projected > limit.value {
            // Creates run before deletes, so a plan that creates anything
            // meets the limit whatever it deletes afterwards.
            if limit.hard && creates > 0 {
                Status::Refused
            } else {
                Status::Over
            }
        } else if projected > 0 && projected * 10 >= limit.value * NEAR_TENTHS {
            Status::Near
        } else {
            Status::Ok
        };
        Check {
            quota,
            what: quota.label(),
            of,
            existing,
            creates,
            deletes,
            projected,
            limit: limit.value,
            limit_from: limit.from,
            hard: limit.hard,
            adjustable: quota.adjustable(),
            source: quota.source(),
            status,
        }
    }

    fn limit_words(&self) -> String {
        let from = match self.limit_from {
            LimitFrom::Default => "AWS's default",
            LimitFrom::Account => "the account's quota",
            LimitFrom::TestOverride => "set by APIFACTORY_TEST_QUOTAS, for tests only",
        };
        let raise = if self.adjustable {
            "AWS raises it on request"
        } else {
            "AWS does not raise it"
        };
        format!("limit {} ({from}; {raise}; {})", self.limit, self.source)
    }

    fn counted(&self) -> String {
        let of = self
            .of
            .as_ref()
            .map(|o| format!(" ({o})"))
            .unwrap_or_default();
        let mut text = format!("{}{of}: {} existing", self.what, self.existing);
        if self.creates > 0 {
            text.push_str(&format!(" + {} to create", self.creates));
        }
        if self.deletes > 0 {
            text.push_str(&format!(" - {} to delete", self.deletes));
        }
        text.push_str(&format!(" = {}", self.projected));
        text
    }
}

/// Every quota, counted for one plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
    /// Account-wide quotas the target could not count, and why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub not_counted: BTreeMap<Quota, String>,
}

impl Report {
    /// Why the plan must not be applied: each hard limit it would cross.
    pub fn refused(&self) -> Option<String> {
        let over: Vec<String> = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Refused)
            .map(|c| format!("{}, over the {}", c.counted(), c.limit_words()))
            .collect();
        (!over.is_empty()).then(|| {
            format!(
                "the plan would cross {} quota(s) AWS enforces, so nothing was applied: {}",
                over.len(),
                over.join("; ")
            )
        })
    }

    /// Whether anything is worth a line in the text plan.
    pub fn has_warnings(&self) -> bool {
        !self.not_counted.is_empty() || self.checks.iter().any(|c| c.status != Status::Ok)
    }
}

/// The warning and refusal lines (nothing when every quota has room).
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.has_warnings() {
            return Ok(());
        }
        writeln!(f, "quotas (what the account holds, after this plan):")?;
        for c in &self.checks {
            let pct = (c.projected * 100)
                .checked_div(c.limit)
                .map(|p| format!(", {p} %"))
                .unwrap_or_default();
            match c.status {
                Status::Ok => {}
                Status::Near => writeln!(
                    f,
                    "  ! {} of {}{pct}: within 10 % of the {}",
                    c.counted(),
                    c.limit,
                    c.limit_words()
                )?,
                Status::Over => writeln!(
                    f,
                    "  ! {}: over the {}; AWS refuses what goes past it unless the account's quota is higher",
                    c.counted(),
                    c.limit_words()
                )?,
                Status::Refused => writeln!(
                    f,
                    "  x {}: over the {}: REFUSED, apply changes nothing",
                    c.counted(),
                    c.limit_words()
                )?,
            }
        }
        for (q, why) in &self.not_counted {
            writeln!(f, "  ? {q}: not counted ({why})")?;
        }
        Ok(())
    }
}

/// Counts every quota for a plan: `steps` are the plan's actions, `desired`
/// and `observed` the resources (for the quotas of one table or one key),
/// `in_scope` the tenants planned.
pub fn check(
    account: &Account,
    steps: &[(&Address, Step)],
    desired: &BTreeMap<Address, Attrs>,
    observed: &BTreeMap<Address, Attrs>,
    in_scope: &dyn Fn(&str) -> bool,
) -> Report {
    let mut report = Report {
        checks: Vec::new(),
        not_counted: account.not_counted.clone(),
    };
    for quota in Quota::ALL {
        let Some(kind) = quota.kind() else {
            continue;
        };
        let Some(&existing) = account.counts.get(&quota) else {
            report
                .not_counted
                .entry(quota)
                .or_insert_with(|| "the target did not list it".into());
            continue;
        };
        let count = |step: Step| {
            steps
                .iter()
                .filter(|(a, s)| a.kind == kind && *s == step)
                .count() as u64
        };
        report.checks.push(Check::new(
            quota,
            account.limits.get(quota),
            None,
            [existing, count(Step::Create), count(Step::Delete)],
        ));
    }
    per_item(
        &mut report,
        Quota::IndexesPerTable,
        account.limits.get(Quota::IndexesPerTable),
        tables(desired, observed, in_scope),
    );
    per_item(
        &mut report,
        Quota::UsagePlansPerKey,
        account.limits.get(Quota::UsagePlansPerKey),
        keys(desired, observed, in_scope),
    );
    report
}

/// IAM's role quota over every cell of one account in a run: IAM is
/// global, so the roles each cell's plan adds all count against the one
/// quota, though each cell's own check sees only its own. `existing` is
/// the account's count (every region's roles), `creates` the roles the
/// cells' plans add together. Deletes are not subtracted: each cell
/// creates before it deletes, and the cells run at once.
pub fn account_roles(limits: &Limits, existing: u64, creates: u64) -> Report {
    Report {
        checks: vec![Check::new(
            Quota::Roles,
            limits.get(Quota::Roles),
            None,
            [existing, creates, 0],
        )],
        not_counted: BTreeMap::new(),
    }
}

/// The checks of a per-resource quota: each resource with a warning, or
/// else the one nearest its limit (so `--json` always shows the headroom).
fn per_item(report: &mut Report, quota: Quota, limit: Limit, items: Vec<(String, [u64; 3])>) {
    let checks: Vec<Check> = items
        .into_iter()
        .map(|(of, counts)| Check::new(quota, limit, Some(of), counts))
        .collect();
    let warned: Vec<Check> = checks
        .iter()
        .filter(|c| c.status != Status::Ok)
        .cloned()
        .collect();
    if warned.is_empty() {
        report
            .checks
            .extend(checks.into_iter().max_by_key(|c| c.projected));
    } else {
        report.checks.extend(warned);
    }
}

/// The secondary indexes of a table's attributes (its key is the table's
/// own, never an index).
fn indexes(attrs: &Attrs) -> BTreeSet<&str> {
    let mut fields: BTreeSet<&str> = attrs
        .get(crate::spec::INDEXES)
        .and_then(Value::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if let Some(Value::String(key)) = attrs.get(crate::spec::KEY) {
        fields.remove(key.as_str());
    }
    fields
}

/// Each planned table: (name, [indexes now, indexes to create, to delete]).
fn tables(
    desired: &BTreeMap<Address, Attrs>,
    observed: &BTreeMap<Address, Attrs>,
    in_scope: &dyn Fn(&str) -> bool,
) -> Vec<(String, [u64; 3])> {
    desired
        .iter()
        .filter(|(a, _)| a.kind == Kind::Table && in_scope(&a.tenant))
        .map(|(a, want)| {
            let wanted = indexes(want);
            let present = observed.get(a).map(indexes).unwrap_or_default();
            let counts = [
                present.len() as u64,
                wanted.difference(&present).count() as u64,
                present.difference(&wanted).count() as u64,
            ];
            (a.name.clone(), counts)
        })
        .collect()
}

/// Each planned key: (name, [plans now, plans to join, plans to leave]).
/// A key joins its tenant's usage plans; keys put in other plans by hand
/// are not seen (that takes a read per key), so this is the floor.
fn keys(
    desired: &BTreeMap<Address, Attrs>,
    observed: &BTreeMap<Address, Attrs>,
    in_scope: &dyn Fn(&str) -> bool,
) -> Vec<(String, [u64; 3])> {
    let plans = |tenant: &str| {
        desired
            .keys()
            .filter(|a| a.kind == Kind::UsagePlan && a.tenant == tenant)
            .count() as u64
    };
    desired
        .keys()
        .filter(|a| a.kind == Kind::ApiKey && in_scope(&a.tenant))
        .map(|a| {
            let n = plans(&a.tenant);
            let counts = if observed.contains_key(a) {
                [n, 0, 0]
            } else {
                [0, n, 0]
            };
            (a.name.clone(), counts)
        })
        .collect()
}

#[cfg(test)]
mod tests;
