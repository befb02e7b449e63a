//! The typed attributes of each kind of resource: one struct per kind,
//! whose fields are the attributes apifactory owns on it. The desired
//! state builds these and turns them into [`Attrs`] in one place
//! ([`Spec::attrs`]); a target's apply reads its action's attributes back
//! as its kind's struct ([`read`]). Observed attributes can be partial (a
//! survey reads some only under `--refresh`), so a target's observe, and
//! whatever reads an observed map, names the attributes with the constants
//! below: every attribute name is spelled here and nowhere else.

use std::cell::Cell;
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::de::value::MapDeserializer;
use serde::{Deserialize, Serialize};

use crate::plan::Action;
use crate::resource::{Attrs, Kind};

// Attribute names, as the structs below serialize them (a test holds the
// two together).
pub const ACCESS_LOG: &str = "access_log";
/// Attribute of a table: apifactory took it over (`[collection] table`)
/// rather than made it. Absent when false, so a table apifactory made has
/// the attributes it always had.
pub const ADOPTED: &str = "adopted";
pub const API: &str = "api";
pub const BASE_PATH: &str = "base_path";
pub const BURST: &str = "burst";
pub const CERTIFICATE_ARN: &str = "certificate_arn";
pub const CLIENT: &str = "client";
pub const CODE_SHA256: &str = "code_sha256";
pub const COLLECTION: &str = "collection";
pub const CURSOR_SECRET: &str = "cursor_secret";
pub const DEFINITION_SHA256: &str = "definition_sha256";
pub const DELETION_PROTECTION: &str = "deletion_protection";
pub const DEPLOYMENT: &str = "deployment";
/// Attribute of a key: whether it works.
pub const ENABLED: &str = "enabled";
/// Attribute of a tenant's stamp: the fingerprint of its desired state.
pub const FINGERPRINT: &str = "fingerprint";
pub const HANDLER: &str = "handler";
pub const HOSTED_ZONE_ID: &str = "hosted_zone_id";
pub const INDEXES: &str = "indexes";
pub const INVOKED_BY: &str = "invoked_by";
pub const KEY: &str = "key";
pub const MEMORY_MB: &str = "memory_mb";
pub const METRIC: &str = "metric";
pub const MINUTES: &str = "minutes";
pub const NOTIFY: &str = "notify";
pub const OPERATION: &str = "operation";
pub const OPERATIONS: &str = "operations";
/// Attribute of an API key: where it came from. Keys from `[[clients]]` are
/// the planner's to create, disable and delete; keys made by
/// `apifactory keys` are not.
pub const ORIGIN: &str = "origin";
pub const POINT_IN_TIME_RECOVERY: &str = "point_in_time_recovery";
pub const QUOTA_LIMIT: &str = "quota_limit";
pub const QUOTA_PERIOD: &str = "quota_period";
pub const RATE: &str = "rate";
pub const RETENTION_DAYS: &str = "retention_days";
pub const ROLE: &str = "role";
pub const RUNTIME: &str = "runtime";
pub const STAGE: &str = "stage";
pub const TABLE: &str = "table";
/// Attribute of a resource: its tags, as far as apifactory sets them (the
/// keys `managed-by` and `apifactory:tenant`; others are not its own).
pub const TAGS: &str = "tags";
pub const THRESHOLD: &str = "threshold";
pub const TIMEOUT_S: &str = "timeout_s";
pub const TRUST: &str = "trust";

// Attributes only a target reports: no desired state carries them.

/// Attribute of a duplicate a target found (see [`DUPLICATE_OF`]): its
/// own id, the one a delete removes.
pub const ID: &str = "id";
/// Attribute of a resource that a target found twice (a create repeated
/// because its answer was lost, or because a list did not show the first
/// yet): the id of the one that stands. A duplicate is deleted, never
/// merely disabled.
pub const DUPLICATE_OF: &str = "duplicate_of";
/// Attribute of a rotated key on a target without key expiry of its own:
/// when its grace period ends (Unix seconds). The plan disables it then.
pub const EXPIRES: &str = "expires";
/// The observed attribute of a table that lists its indexed fields whose
/// index is not ACTIVE yet. A target that reports it builds a new index in
/// the background (DynamoDB backfills it from the table's items, for hours
/// on a large table, and a Query on it fails until then); a target that
/// does not (local) has every index the moment it is made.
pub const BACKFILLING: &str = "backfilling";
/// The attribute a drift report names for a missing or extra resource.
pub const EXISTS: &str = "exists";

/// A resource's tags, by key.
pub type Tags = BTreeMap<String, String>;

/// The items table: its key, its indexed fields with their DynamoDB
/// attribute type (`S` or `N`), and its two protections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Default))]
pub struct TableSpec {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
    pub key: String,
    pub indexes: BTreeMap<String, String>,
    pub point_in_time_recovery: bool,
    pub deletion_protection: bool,
}

/// The functions' role: what it grants (the table, the indexes search
/// reads, the operations) and who may assume it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Default))]
pub struct RoleSpec {
    pub table: String,
    pub indexes: Vec<String>,
    pub operations: Vec<String>,
    pub trust: Vec<String>,
    pub tags: Tags,
}

/// A log group: a function's, or the stage's access log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Default))]
pub struct LogGroupSpec {
    pub retention_days: u32,
    pub tags: Tags,
}

/// One operation's function. `cursor_secret` says only whether the target
/// set the tenant's cursor secret (never its value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Default))]
pub struct FunctionSpec {
    pub operation: String,
    pub runtime: String,
    pub handler: String,
    pub role: String,
    pub memory_mb: u32,
    pub timeout_s: u32,
    pub code_sha256: String,
    pub table: String,
    pub cursor_secret: bool,
    pub invoked_by: String,
    pub tags: Tags,
}

/// The REST API: the hash of the document it is imported from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Default))]
pub struct ApiSpec {
    pub definition_sha256: String,
    pub collection: String,
}

/// The stage: the API definition it deploys, its API-wide throttling
/// (`None` for none) and its access log group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Default))]
pub struct StageSpec {
    pub deployment: String,
    #[serde(deserialize_with = "Option::deserialize")]
    pub rate: Option<f64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub burst: Option<u32>,
    pub access_log: String,
    pub tags: Tags,
}

/// The usage plan: the per-key throttling, the quota (`None` for none)
/// and the stage it covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Default))]
pub struct UsagePlanSpec {
    pub rate: f64,
    pub burst: u32,
    #[serde(deserialize_with = "Option::deserialize")]
    pub quota_limit: Option<u64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub quota_period: Option<String>,
    pub stage: String,
}

/// A client's API key. `client` is `None` only on a key found without its
/// client tag (a disable carries the key as observed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Default))]
pub struct ApiKeySpec {
    #[serde(deserialize_with = "Option::deserialize")]
    pub client: Option<String>,
    pub enabled: bool,
    pub origin: String,
}

/// The custom domain: its certificate, the base path mapped to the stage,
/// and the Route 53 zone for its alias record, when given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Default))]
pub struct DomainSpec {
    pub certificate_arn: String,
    pub base_path: String,
    #[serde(deserialize_with = "Option::deserialize")]
    pub hosted_zone_id: Option<String>,
    pub stage: String,
}

/// A CloudWatch alarm of one of the tenant's `[[alarms]]` (`quota_share`
/// has none: no metric is per key): what it watches on which API and
/// stage, above what over how many minutes, and the topics it tells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Default))]
pub struct AlarmSpec {
    pub metric: String,
    pub threshold: f64,
    pub minutes: u32,
    pub notify: Vec<String>,
    pub api: String,
    pub stage: String,
}

/// A tenant's stamp (see [`Kind::Stamp`]); `None` clears it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(Default))]
pub struct StampSpec {
    #[serde(deserialize_with = "Option::deserialize")]
    pub fingerprint: Option<String>,
}

/// A resource's attributes, typed by its kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    Table(TableSpec),
    Role(RoleSpec),
    LogGroup(LogGroupSpec),
    Function(FunctionSpec),
    Api(ApiSpec),
    Stage(StageSpec),
    UsagePlan(UsagePlanSpec),
    ApiKey(ApiKeySpec),
    Domain(DomainSpec),
    Alarm(AlarmSpec),
    Stamp(StampSpec),
}

impl Spec {
    pub fn kind(&self) -> Kind {
        match self {
            Spec::Table(_) => Kind::Table,
            Spec::Role(_) => Kind::Role,
            Spec::LogGroup(_) => Kind::LogGroup,
            Spec::Function(_) => Kind::Function,
            Spec::Api(_) => Kind::Api,
            Spec::Stage(_) => Kind::Stage,
            Spec::UsagePlan(_) => Kind::UsagePlan,
            Spec::ApiKey(_) => Kind::ApiKey,
            Spec::Domain(_) => Kind::Domain,
            Spec::Alarm(_) => Kind::Alarm,
            Spec::Stamp(_) => Kind::Stamp,
        }
    }

    /// The attributes the planner compares and the plan carries: each
    /// field by its name, `None` as null.
    pub fn attrs(&self) -> Attrs {
        match self {
            Spec::Table(s) => to_attrs(s),
            Spec::Role(s) => to_attrs(s),
            Spec::LogGroup(s) => to_attrs(s),
            Spec::Function(s) => to_attrs(s),
            Spec::Api(s) => to_attrs(s),
            Spec::Stage(s) => to_attrs(s),
            Spec::UsagePlan(s) => to_attrs(s),
            Spec::ApiKey(s) => to_attrs(s),
            Spec::Domain(s) => to_attrs(s),
            Spec::Alarm(s) => to_attrs(s),
            Spec::Stamp(s) => to_attrs(s),
        }
    }
}

fn to_attrs<T: Serialize>(spec: &T) -> Attrs {
    match serde_json::to_value(spec) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
        // Every spec is a struct of plain fields: always an object.
        other => unreachable!("a spec serialized to {other:?}"),
    }
}

/// An action's attributes as its kind's spec, for the target that applies
/// it; the error names the action's address and the field missing or of
/// the wrong type. Attributes the spec does not have (a target's own, on
/// an action that carries what was observed) are ignored.
pub fn read<T: DeserializeOwned>(action: &Action) -> anyhow::Result<T> {
    // The attribute being read: the map yields each one before its value
    // is parsed, and none once they are all read (a field missing then).
    let at: Cell<Option<&str>> = Cell::new(None);
    let pairs = action
        .attrs
        .iter()
        .map(|(k, v)| {
            at.set(Some(k));
            (k.as_str(), v.clone())
        })
        .chain(std::iter::from_fn(|| {
            at.set(None);
            None
        }));
    T::deserialize(MapDeserializer::<_, serde_json::Error>::new(pairs)).map_err(|e| {
        match at.get() {
            Some(field) => anyhow::anyhow!("{}: attribute {field}: {e}", action.address),
            None => anyhow::anyhow!("{}: {e}", action.address),
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::payload::Payload;
    use crate::plan::Change;
    use crate::resource::Address;

    #[test]
    fn the_constants_name_every_field_of_every_kind() {
        let specs: [(Spec, &[&str]); 11] = [
            (
                Spec::Table(Default::default()),
                &[KEY, INDEXES, POINT_IN_TIME_RECOVERY, DELETION_PROTECTION],
            ),
            (
                Spec::Role(Default::default()),
                &[TABLE, INDEXES, OPERATIONS, TRUST, TAGS],
            ),
            (Spec::LogGroup(Default::default()), &[RETENTION_DAYS, TAGS]),
            (
                Spec::Function(Default::default()),
                &[
                    OPERATION,
                    RUNTIME,
                    HANDLER,
                    ROLE,
                    MEMORY_MB,
                    TIMEOUT_S,
                    CODE_SHA256,
                    TABLE,
                    CURSOR_SECRET,
                    INVOKED_BY,
                    TAGS,
                ],
            ),
            (
                Spec::Api(Default::default()),
                &[DEFINITION_SHA256, COLLECTION],
            ),
            (
                Spec::Stage(Default::default()),
                &[DEPLOYMENT, RATE, BURST, ACCESS_LOG, TAGS],
            ),
            (
                Spec::UsagePlan(Default::default()),
                &[RATE, BURST, QUOTA_LIMIT, QUOTA_PERIOD, STAGE],
            ),
            (Spec::ApiKey(Default::default()), &[CLIENT, ENABLED, ORIGIN]),
            (
                Spec::Domain(Default::default()),
                &[CERTIFICATE_ARN, BASE_PATH, HOSTED_ZONE_ID, STAGE],
            ),
            (
                Spec::Alarm(Default::default()),
                &[METRIC, THRESHOLD, MINUTES, NOTIFY, API, STAGE],
            ),
            (Spec::Stamp(Default::default()), &[FINGERPRINT]),
        ];
        let mut kinds = Vec::new();
        for (spec, names) in specs {
            let mut names = names.to_vec();
            names.sort_unstable();
            let attrs = spec.attrs();
            assert_eq!(attrs.keys().collect::<Vec<_>>(), names, "{}", spec.kind());
            kinds.push(spec.kind());
        }
        assert_eq!(kinds, Kind::ALL);
    }

    fn action(attrs: Attrs) -> Action {
        Action {
            address: Address::new("acme", Kind::Stage, "prod"),
            change: Change::Create,
            attrs,
            payload: Payload::None,
        }
    }

    #[test]
    fn a_spec_reads_back_what_it_wrote() {
        let stage = StageSpec {
            deployment: "abc".into(),
            rate: Some(50.0),
            burst: None,
            access_log: "group".into(),
            tags: Tags::from([("managed-by".into(), "apifactory".into())]),
        };
        let mut attrs = Spec::Stage(stage.clone()).attrs();
        assert_eq!(attrs[RATE], json!(50.0));
        assert_eq!(attrs[BURST], json!(null));
        // A target's own attributes do not get in the way.
        attrs.insert(ID.into(), json!("x1"));
        assert_eq!(read::<StageSpec>(&action(attrs)).unwrap(), stage);
    }

    #[test]
    fn a_missing_or_mistyped_field_is_named_with_the_address() {
        let mut attrs = Spec::Stage(StageSpec::default()).attrs();
        attrs.insert(BURST.into(), json!("many"));
        let e = read::<StageSpec>(&action(attrs.clone())).unwrap_err();
        assert!(
            e.to_string().starts_with("stage prod: attribute burst: "),
            "{e}"
        );
        attrs.remove(BURST);
        let e = read::<StageSpec>(&action(attrs)).unwrap_err();
        assert_eq!(e.to_string(), "stage prod: missing field `burst`");
    }
}
