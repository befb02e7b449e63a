//! The resources a tenant owns, in a form every target shares: an address
//! (tenant, kind, deterministic name) and the attributes apifactory owns.
//! Targets map these onto what they really create; the planner compares
//! only these attributes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a resource is. The order is the dependency order: creates run in
/// this order, deletes in reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Table,
    Role,
    LogGroup,
    Function,
    Api,
    Stage,
    UsagePlan,
    ApiKey,
    Domain,
    /// A CloudWatch alarm of one of the tenant's `[[alarms]]`.
    Alarm,
    /// The record that a tenant's apply went through whole: the
    /// fingerprint of its desired resources, written as the tenant's last
    /// action. A target that finds it matching may take the tenant's
    /// resources as converged without reading each one.
    Stamp,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Table,
        Kind::Role,
        Kind::LogGroup,
        Kind::Function,
        Kind::Api,
        Kind::Stage,
        Kind::UsagePlan,
        Kind::ApiKey,
        Kind::Domain,
        Kind::Alarm,
        Kind::Stamp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Table => "table",
            Kind::Role => "role",
            Kind::LogGroup => "log_group",
            Kind::Function => "function",
            Kind::Api => "api",
            Kind::Stage => "stage",
            Kind::UsagePlan => "usage_plan",
            Kind::ApiKey => "api_key",
            Kind::Domain => "domain",
            Kind::Alarm => "alarm",
            Kind::Stamp => "stamp",
        }
    }

    /// Whether one resource serves every region of an account: an IAM
    /// role (IAM is global). Every cell of the account lists it.
    pub fn account_wide(self) -> bool {
        self == Kind::Role
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kinds a resource of this kind is made from, directly: its
    /// creates and updates wait for theirs. A function runs as its role,
    /// logs to its group and reads its table (a new index first); the REST
    /// API invokes the functions; a stage deploys the API and writes its
    /// access log to a group; the usage plan names the stage, a key joins
    /// the usage plan, and the domain maps a base path to the stage. The
    /// stamp, written last, follows everything (see [`Kind::Stamp`]).
    pub fn needs(self) -> &'static [Kind] {
        match self {
            Kind::Table | Kind::Role | Kind::LogGroup => &[],
            Kind::Function => &[Kind::Role, Kind::LogGroup, Kind::Table],
            Kind::Api => &[Kind::Function],
            Kind::Stage => &[Kind::Api, Kind::LogGroup],
            Kind::UsagePlan => &[Kind::Stage],
            Kind::ApiKey => &[Kind::UsagePlan],
            Kind::Domain => &[Kind::Stage],
            // Its metric is the stage's.
            Kind::Alarm => &[Kind::Stage],
            // Follows every other kind: see `depends_on`.
            Kind::Stamp => &[],
        }
    }

    /// Whether this kind is made from `other`, directly or through others.
    pub fn depends_on(self, other: Kind) -> bool {
        if self == Kind::Stamp {
            return other != Kind::Stamp;
        }
        self != other
            && self
                .needs()
                .iter()
                .any(|&k| k == other || k.depends_on(other))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a resource lives: unique across all tenants and kinds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Address {
    pub tenant: String,
    pub kind: Kind,
    pub name: String,
}

impl Address {
    pub fn new(tenant: &str, kind: Kind, name: impl Into<String>) -> Self {
        Address {
            tenant: tenant.to_owned(),
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// The attributes apifactory owns on a resource, by name: what the planner
/// diffs and the plan carries. Each kind's are typed in [`crate::spec`],
/// where their names are spelled.
pub type Attrs = BTreeMap<String, Value>;

/// Builds attributes from `(name, value)` pairs.
pub fn attrs<const N: usize>(pairs: [(&str, Value); N]) -> Attrs {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The value of an API key's origin ([`crate::spec::ORIGIN`]) when it was
/// made from the tenant file's `[[clients]]`.
pub const ORIGIN_FILE: &str = "file";

/// Tag keys. Every resource that takes tags carries `managed-by` and the
/// tenant (the attribute `tags` of those whose tags are not what finds
/// them); API keys also carry their client and origin.
pub const TAG_MANAGED_BY: &str = "managed-by";
pub const TAG_TENANT: &str = "apifactory:tenant";
pub const TAG_CLIENT: &str = "apifactory:client";
pub const TAG_ORIGIN: &str = "apifactory:origin";
/// On a table apifactory adopted rather than made (`true`): destroy keeps
/// it unless told `--delete-adopted-data`, whatever the tenant file says
/// by then.
pub const TAG_ADOPTED: &str = "apifactory:adopted";
