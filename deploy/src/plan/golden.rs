//! Golden plans: for a fixed set of tenant files and observed states, the
//! plan's text (what `apifactory plan` prints) and its JSON (`plan --json`)
//! must match the files checked in byte for byte.
//!
//! - Tenant files: `deploy/tests/golden/tenants/` (a frozen copy of the
//!   five examples, so editing `tenants/` does not move the goldens).
//! - Goldens: `deploy/tests/golden/<target>/<scenario>.txt` and `.json`,
//!   `<target>` being `local` or `aws`.
//!
//! Each scenario starts from nothing or from the tenants deployed and
//! converged, changes what exists by hand ([`Edit`]), edits the files
//! ([`FileEdit`]), or both, then plans. Twice, as each target observes it:
//! `local` really applies the files to a `LocalTarget` in a temporary
//! directory and edits its state (`golden/local.rs`); `aws` builds what the
//! AWS target's observe reports (`backfilling` on tables, `expires` on
//! rotated keys, duplicates, the kinds a stamp vouches for, the account's
//! quotas: `golden/aws.rs`). Deterministic: a fixed run time
//! ([`NOW`]) and a fake code hash ([`GoldenCode`]).
//!
//! When a plan changes on purpose, bless the goldens and review the diff:
//!
//! ```text
//! APIFACTORY_BLESS=1 cargo test --workspace --locked --lib -- golden
//! git diff deploy/tests/golden
//! ```
//!
//! Blessing rewrites every golden file and removes those of scenarios that
//! are gone; without it, a missing, stale or different file fails the test
//! with the first line that differs.

mod aws;
mod local;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use runtime::Tenant;
use sha2::{Digest, Sha256};

use super::{Options, Plan, plan};
use crate::desired::{Code, Desired, desired, hex};
use crate::resource::Kind;

/// The run's time (2027-01-15T08:00:00Z): a rotated key whose grace
/// period ended an hour before is due to be disabled.
pub const NOW: i64 = 1_800_000_000;

/// The code hash: of the tenant source only, so no build changes it.
pub struct GoldenCode;

impl Code for GoldenCode {
    fn sha256(&self, _: &Tenant, source: &str) -> String {
        hex(&Sha256::digest(format!("golden code\0{source}").as_bytes()))
    }
}

/// The tenants every scenario starts from.
const TENANTS: [&str; 5] = ["acme", "bookshop", "clinic", "events", "fleet"];

/// A change made by hand to what is deployed, outside apifactory.
#[derive(Debug, Clone, Copy)]
pub enum Edit {
    /// An attribute set to another value (JSON text).
    Set {
        tenant: &'static str,
        kind: Kind,
        name: &'static str,
        field: &'static str,
        value: &'static str,
    },
    /// A resource deleted.
    Delete {
        tenant: &'static str,
        kind: Kind,
        name: &'static str,
    },
    /// A client's key rotated (`apifactory keys rotate`), its grace period
    /// over an hour before the run.
    Rotate {
        tenant: &'static str,
        client: &'static str,
    },
    /// A second REST API of the tenant, left by a create whose answer was
    /// lost. AWS only: the local target makes none.
    DuplicateApi { tenant: &'static str },
    /// The tenant's table backfilling indexes on these fields. AWS only:
    /// the local target has an index the moment it is made.
    Backfilling {
        tenant: &'static str,
        fields: &'static [&'static str],
    },
}

/// A change to the tenant files after the deploy.
#[derive(Debug, Clone, Copy)]
pub enum FileEdit {
    /// The first `from` in the tenant's file becomes `to`.
    Replace {
        tenant: &'static str,
        from: &'static str,
        to: &'static str,
    },
    /// The tenant's file is gone.
    Remove { tenant: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Local,
    Aws,
}

impl Which {
    fn dir(self) -> &'static str {
        match self {
            Which::Local => "local",
            Which::Aws => "aws",
        }
    }
}

pub struct Scenario {
    pub name: &'static str,
    /// Nothing is deployed before the plan (a first apply).
    pub fresh: bool,
    pub edits: &'static [Edit],
    pub files: &'static [FileEdit],
    /// `--prune`, `--delete-data`.
    pub prune: bool,
    pub delete_data: bool,
    /// The AWS target only (its observe reports what the local one cannot).
    pub aws_only: bool,
    /// REST APIs in the account that are not apifactory's (AWS).
    pub rest_apis_elsewhere: u64,
}

const BASE: Scenario = Scenario {
    name: "",
    fresh: false,
    edits: &[],
    files: &[],
    prune: false,
    delete_data: false,
    aws_only: false,
    rest_apis_elsewhere: 40,
};

const TITLE: &str = "title     = { type = \"string\", required = true, max_length = 200 }";
const TITLE_INDEXED: &str =
    "title     = { type = \"string\", required = true, max_length = 200, index = true }";

/// The second client of acme, whole.
const BILLING: &str =
    "[[clients]]\nname = \"acme-billing\"\ndescription = \"The billing system's nightly sync.\"\n";

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "empty",
        fresh: true,
        ..BASE
    },
    Scenario {
        name: "converged",
        ..BASE
    },
    // A kind the lists carry (the usage plan) and one a stamp vouches for
    // on AWS (a log group): there, the stamp is cleared first.
    Scenario {
        name: "attributes_changed_by_hand",
        edits: &[
            Edit::Set {
                tenant: "acme",
                kind: Kind::UsagePlan,
                name: "apifactory-acme",
                field: "rate",
                value: "5.0",
            },
            Edit::Set {
                tenant: "clinic",
                kind: Kind::LogGroup,
                name: "/aws/lambda/apifactory-clinic-get",
                field: "retention_days",
                value: "7",
            },
        ],
        ..BASE
    },
    Scenario {
        name: "key_deleted_by_hand",
        edits: &[Edit::Delete {
            tenant: "acme",
            kind: Kind::ApiKey,
            name: "apifactory-acme-acme-web",
        }],
        ..BASE
    },
    Scenario {
        name: "client_removed",
        files: &[FileEdit::Replace {
            tenant: "acme",
            from: BILLING,
            to: "",
        }],
        ..BASE
    },
    Scenario {
        name: "client_removed_prune",
        files: &[FileEdit::Replace {
            tenant: "acme",
            from: BILLING,
            to: "",
        }],
        prune: true,
        ..BASE
    },
    Scenario {
        name: "orphan_tenant",
        files: &[FileEdit::Remove { tenant: "fleet" }],
        ..BASE
    },
    Scenario {
        name: "orphan_tenant_prune",
        files: &[FileEdit::Remove { tenant: "fleet" }],
        prune: true,
        ..BASE
    },
    Scenario {
        name: "orphan_tenant_delete_data",
        files: &[FileEdit::Remove { tenant: "fleet" }],
        prune: true,
        delete_data: true,
        ..BASE
    },
    Scenario {
        name: "duplicate_rest_api",
        edits: &[Edit::DuplicateApi { tenant: "acme" }],
        aws_only: true,
        ..BASE
    },
    Scenario {
        name: "rotated_key_expired",
        edits: &[Edit::Rotate {
            tenant: "clinic",
            client: "front-desk",
        }],
        ..BASE
    },
    Scenario {
        name: "stamp_differs",
        edits: &[Edit::Set {
            tenant: "bookshop",
            kind: Kind::Stamp,
            name: "bookshop",
            field: "fingerprint",
            value: "\"0000000000000000000000000000000000000000000000000000000000000000\"",
        }],
        ..BASE
    },
    Scenario {
        name: "table_key_changed",
        files: &[FileEdit::Replace {
            tenant: "events",
            from: "key = \"id\"",
            to: "key = \"event_id\"",
        }],
        ..BASE
    },
    // The file indexes a field: on AWS the table builds it in the
    // background and the functions wait; locally all moves at once.
    Scenario {
        name: "index_added",
        files: &[FileEdit::Replace {
            tenant: "events",
            from: TITLE,
            to: TITLE_INDEXED,
        }],
        ..BASE
    },
    // The index exists and is still backfilling after the table's update.
    Scenario {
        name: "index_backfilling",
        files: &[FileEdit::Replace {
            tenant: "events",
            from: TITLE,
            to: TITLE_INDEXED,
        }],
        edits: &[
            Edit::Set {
                tenant: "events",
                kind: Kind::Table,
                name: "apifactory-events",
                field: "indexes",
                value: r#"{"capacity": "N", "title": "S", "venue": "S"}"#,
            },
            Edit::Backfilling {
                tenant: "events",
                fields: &["title"],
            },
        ],
        aws_only: true,
        ..BASE
    },
    // The account near its hard quota of REST APIs: a warning line.
    Scenario {
        name: "quota_near",
        aws_only: true,
        rest_apis_elsewhere: 560,
        ..BASE
    },
    // A first deploy that would cross it: the plan is refused.
    Scenario {
        name: "quota_refused",
        fresh: true,
        aws_only: true,
        rest_apis_elsewhere: 596,
        ..BASE
    },
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The fixed tenant files, by id.
pub fn files() -> BTreeMap<String, String> {
    TENANTS
        .iter()
        .map(|id| {
            let path = golden_dir().join("tenants").join(format!("{id}.toml"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (id.to_string(), text)
        })
        .collect()
}

/// The files as a scenario leaves them.
pub fn edited(files: &BTreeMap<String, String>, edits: &[FileEdit]) -> BTreeMap<String, String> {
    let mut files = files.clone();
    for edit in edits {
        match *edit {
            FileEdit::Replace { tenant, from, to } => {
                let text = files.get_mut(tenant).expect("a golden tenant");
                assert!(text.contains(from), "{tenant}.toml has no {from:?}");
                *text = text.replacen(from, to, 1);
            }
            FileEdit::Remove { tenant } => {
                files.remove(tenant);
            }
        }
    }
    files
}

/// The desired state of these files, as the engine computes it.
pub fn desired_of(files: &BTreeMap<String, String>) -> Desired {
    let mut tenants = Vec::new();
    let mut sources = BTreeMap::new();
    for (id, text) in files {
        let path = PathBuf::from(format!("tenants/{id}.toml"));
        tenants.push(Tenant::parse(&path, text).unwrap_or_else(|e| panic!("{id}: {e}")));
        sources.insert(id.clone(), crate::tenants::package_source(text).unwrap());
    }
    desired(&tenants, &sources, &GoldenCode)
}

fn options(s: &Scenario) -> Options {
    Options {
        tenants: BTreeSet::new(),
        prune: s.prune,
        prune_tenants: false,
        delete_data: s.delete_data,
        delete_adopted_data: false,
        now: NOW,
        data: Vec::new(),
        elsewhere: BTreeSet::new(),
    }
}

/// The plan of a scenario on a target.
async fn planned(which: Which, s: &Scenario) -> Plan {
    let base = files();
    let observed = match which {
        Which::Aws => aws::observed(&desired_of(&base), s),
        Which::Local => local::observed(&base, s).await,
    };
    plan(&desired_of(&edited(&base, s.files)), &observed, &options(s))
}

/// Compares (or, blessing, writes) one golden file; a difference is
/// recorded, not raised, so one run names every file that differs.
fn compare(path: &Path, actual: &str, bless: bool, failures: &mut Vec<String>) {
    if bless {
        std::fs::write(path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let Ok(expected) = std::fs::read_to_string(path) else {
        failures.push(format!("{}: missing", path.display()));
        return;
    };
    if expected == actual {
        return;
    }
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let line = (0..e.len().max(a.len()))
        .find(|&i| e.get(i) != a.get(i))
        .unwrap_or(0);
    failures.push(format!(
        "{}: line {} differs\n  golden: {:?}\n  now:    {:?}",
        path.display(),
        line + 1,
        e.get(line).copied().unwrap_or("<end of file>"),
        a.get(line).copied().unwrap_or("<end of file>"),
    ));
}

/// Plans every scenario of a target and compares both renderings with the
/// goldens; files of no scenario are stale.
async fn check(which: Which) {
    let bless = std::env::var_os("APIFACTORY_BLESS").is_some_and(|v| v == "1");
    let dir = golden_dir().join(which.dir());
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    let mut expected = BTreeSet::new();
    for s in SCENARIOS
        .iter()
        .filter(|s| which == Which::Aws || !s.aws_only)
    {
        let p = planned(which, s).await;
        let text = format!("{p}\n");
        let json = format!("{}\n", serde_json::to_string_pretty(&p).unwrap());
        for (ext, actual) in [("txt", text), ("json", json)] {
            let file = format!("{}.{ext}", s.name);
            compare(&dir.join(&file), &actual, bless, &mut failures);
            expected.insert(file);
        }
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if expected.contains(&name) {
            continue;
        }
        if bless {
            std::fs::remove_file(&path).unwrap();
        } else {
            failures.push(format!("{}: stale (no scenario makes it)", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden file(s) differ from the plans (APIFACTORY_BLESS=1 rewrites them; review the diff):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn golden_plans_local() {
    check(Which::Local).await;
}

#[tokio::test]
async fn golden_plans_aws() {
    check(Which::Aws).await;
}

/// The goldens would prove nothing if a scenario planned the same as the
/// converged state: each one's edit must show in its plan.
#[tokio::test]
async fn every_scenario_changes_something() {
    for which in [Which::Local, Which::Aws] {
        let converged = planned(which, &SCENARIOS[1]).await;
        assert!(converged.is_empty(), "{}", converged);
        for s in SCENARIOS
            .iter()
            .filter(|s| which == Which::Aws || !s.aws_only)
        {
            if s.name == "converged" {
                continue;
            }
            let p = planned(which, s).await;
            // A rotated key is the local gateway's to expire: its plan
            // stays empty, and that is what its golden shows.
            if which == Which::Local && s.name == "rotated_key_expired" {
                assert!(p.is_empty(), "{p}");
                continue;
            }
            assert_ne!(p, converged, "{:?} {}", which, s.name);
        }
    }
}
