//! The planner's unit tests, over the in-memory target: each plans the
//! repository's tenant files against a state, applies, and plans again.
//! Over 600 lines because the planner has that many cases (keys, stamps,
//! indexes, orphans, quotas); they share the fixtures above them.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::apply::{Quiet, apply};
use crate::target::{MemoryTarget, Target, desired_from, file};

async fn converge(d: &Desired, target: &Arc<MemoryTarget>, opts: &Options) -> Plan {
    let observed = target.observe(&opts.tenants).await.unwrap();
    let p = plan(d, &observed, opts);
    let report = apply(&p, target.clone(), 4, Arc::new(Quiet)).await;
    assert!(report.ok(), "{report}");
    p
}

async fn replan(d: &Desired, target: &MemoryTarget, opts: &Options) -> Plan {
    plan(d, &target.observe(&BTreeSet::new()).await.unwrap(), opts)
}

#[tokio::test]
async fn apply_then_plan_again_is_empty() {
    let d = desired_from(&[("acme", file("acme")), ("clinic", file("clinic"))]);
    let target = Arc::new(MemoryTarget::default());
    let first = converge(&d, &target, &Options::default()).await;
    assert_eq!(
        first.count(|c| matches!(c, Change::Create)),
        d.resources.len()
    );
    // Creates come in dependency order within each tenant.
    let acme: Vec<Kind> = first
        .actions
        .iter()
        .filter(|a| a.address.tenant == "acme")
        .map(|a| a.address.kind)
        .collect();
    let mut sorted = acme.clone();
    sorted.sort();
    assert_eq!(acme, sorted);
    let again = replan(&d, &target, &Options::default()).await;
    assert!(again.is_empty(), "{again}");
    assert_eq!(again.to_string(), "No changes.");
}

#[tokio::test]
async fn a_changed_field_plans_exactly_that_change() {
    let target = Arc::new(MemoryTarget::default());
    converge(
        &desired_from(&[("acme", file("acme"))]),
        &target,
        &Options::default(),
    )
    .await;
    let changed = file("acme").replace("rate = 50", "rate = 60");
    let p = replan(
        &desired_from(&[("acme", changed)]),
        &target,
        &Options::default(),
    )
    .await;
    let changes: Vec<String> = p
        .actions
        .iter()
        .map(|a| match &a.change {
            Change::Update { fields } => format!(
                "{} {}",
                a.address,
                fields
                    .iter()
                    .map(|f| format!("{}:{}->{}", f.field, f.from, f.to))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            other => format!("{other:?}"),
        })
        .collect();
    // The usage plan's per-key rate only: the stage throttles all
    // callers together, so it follows the API-wide total (acme sets
    // none), never the per-key rate. The functions' package holds no
    // usage plan, so no code changes. Then the stamp, last.
    assert_eq!(changes.len(), 2, "{p}");
    assert_eq!(changes[0], "usage_plan apifactory-acme rate:50.0->60.0");
    assert!(changes[1].starts_with("stamp acme fingerprint:"), "{p}");
    assert_eq!(p.count(|c| matches!(c, Change::Update { .. })), 2, "{p}");
    assert_eq!(p.count(|c| !matches!(c, Change::Update { .. })), 0);
    assert!(
        p.to_string()
            .contains("~ usage_plan apifactory-acme  (rate: 50.0 -> 60.0)"),
        "{p}"
    );
}

#[tokio::test]
async fn a_removed_client_is_disabled_then_pruned() {
    let target = Arc::new(MemoryTarget::default());
    converge(
        &desired_from(&[("acme", file("acme"))]),
        &target,
        &Options::default(),
    )
    .await;
    let without = file("acme").replace(
        "[[clients]]\nname = \"acme-billing\"",
        "[[nope]]\nname = \"x\"",
    );
    let without = without.replace(
        "[[nope]]\nname = \"x\"\ndescription = \"The billing system's nightly sync.\"\n",
        "",
    );
    let d = desired_from(&[("acme", without)]);
    let p = converge(&d, &target, &Options::default()).await;
    let keys: Vec<&Action> = p
        .actions
        .iter()
        .filter(|a| a.address.kind == Kind::ApiKey)
        .collect();
    assert_eq!(keys.len(), 1, "{p}");
    assert_eq!(keys[0].address.name, "apifactory-acme-acme-billing");
    assert_eq!(keys[0].attrs["enabled"], json!(false));
    // Disabled stays disabled: nothing more to do without --prune.
    let p = replan(&d, &target, &Options::default()).await;
    assert!(
        p.actions.iter().all(|a| a.address.kind != Kind::ApiKey),
        "{p}"
    );
    let prune = Options {
        prune: true,
        ..Options::default()
    };
    let p = converge(&d, &target, &prune).await;
    let deleted: Vec<String> = p
        .actions
        .iter()
        .filter(|a| a.change == Change::Delete)
        .map(|a| a.address.to_string())
        .collect();
    assert!(
        deleted.contains(&"api_key apifactory-acme-acme-billing".to_owned()),
        "{p}"
    );
}

#[tokio::test]
async fn keys_made_by_hand_are_not_the_files_to_manage() {
    let d = desired_from(&[("acme", file("acme"))]);
    let target = Arc::new(MemoryTarget::default());
    converge(&d, &target, &Options::default()).await;
    target.resources.lock().unwrap().resources.insert(
        crate::resource::Address::new("acme", Kind::ApiKey, "apifactory-acme-partner-01"),
        crate::resource::attrs([
            ("client", json!("partner")),
            ("enabled", json!(true)),
            (ORIGIN, json!("cli")),
        ]),
    );
    let prune = Options {
        prune: true,
        ..Options::default()
    };
    assert!(replan(&d, &target, &prune).await.is_empty());
}

#[tokio::test]
async fn a_rotated_key_past_its_grace_is_planned_disabled_once() {
    let d = desired_from(&[("acme", file("acme"))]);
    let target = Arc::new(MemoryTarget::default());
    converge(&d, &target, &Options::default()).await;
    let rotated =
        crate::resource::Address::new("acme", Kind::ApiKey, "apifactory-acme-acme-web-rotated-k1");
    target.resources.lock().unwrap().resources.insert(
        rotated.clone(),
        crate::resource::attrs([
            ("client", json!("acme-web")),
            (ENABLED, json!(true)),
            (ORIGIN, json!("rotated")),
            (EXPIRES, json!(1_000)),
        ]),
    );
    let at = |now| Options {
        now,
        ..Options::default()
    };
    // Within the grace period, and in a plan that knows no time: kept.
    assert!(replan(&d, &target, &at(999)).await.is_empty());
    assert!(replan(&d, &target, &at(0)).await.is_empty());
    // After it: one change, shown in the plan, and none once applied.
    let p = converge(&d, &target, &at(1_000)).await;
    assert_eq!(p.actions.len(), 1, "{p}");
    assert_eq!(p.actions[0].address, rotated);
    assert!(
        p.to_string()
            .contains("~ api_key    apifactory-acme-acme-web-rotated-k1  (enabled: true -> false)"),
        "{p}"
    );
    assert!(replan(&d, &target, &at(2_000)).await.is_empty());
    // Another tenant's scope leaves it alone.
    target
        .resources
        .lock()
        .unwrap()
        .resources
        .get_mut(&rotated)
        .unwrap()
        .insert(ENABLED.into(), json!(true));
    let other = Options {
        tenants: ["clinic".to_owned()].into(),
        now: 2_000,
        ..Options::default()
    };
    assert!(replan(&d, &target, &other).await.is_empty());
}

/// A cell of an account sees the IAM roles of the account's other cells
/// (IAM is global): a tenant placed in another of them keeps its role, even
/// under `--prune`, while its regional resources found here are pruned.
#[tokio::test]
async fn a_tenant_in_another_cell_of_the_account_keeps_its_role_here() {
    let target = Arc::new(MemoryTarget::default());
    converge(
        &desired_from(&[("acme", file("acme")), ("clinic", file("clinic"))]),
        &target,
        &Options::default(),
    )
    .await;
    let only_acme = desired_from(&[("acme", file("acme"))]);
    let prune = Options {
        prune: true,
        elsewhere: ["clinic".to_owned()].into(),
        ..Options::default()
    };
    let p = replan(&only_acme, &target, &prune).await;
    assert!(
        p.actions
            .iter()
            .any(|a| a.address.tenant == "clinic" && a.change == Change::Delete),
        "its regional resources here go: {p}"
    );
    assert!(
        p.actions.iter().all(|a| a.address.kind != Kind::Role)
            && p.orphans.iter().all(|a| a.kind != Kind::Role),
        "{p}"
    );
    let without = replan(
        &only_acme,
        &target,
        &Options {
            prune: true,
            ..Options::default()
        },
    )
    .await;
    assert!(
        without
            .actions
            .iter()
            .any(|a| a.address.kind == Kind::Role && a.address.tenant == "clinic"),
        "without the cell's knowledge the role would go: {without}"
    );
}

#[tokio::test]
async fn a_gone_tenant_is_orphaned_until_pruned_and_keeps_its_table() {
    let target = Arc::new(MemoryTarget::default());
    converge(
        &desired_from(&[("acme", file("acme")), ("clinic", file("clinic"))]),
        &target,
        &Options::default(),
    )
    .await;
    let only_acme = desired_from(&[("acme", file("acme"))]);
    let p = replan(&only_acme, &target, &Options::default()).await;
    assert!(p.is_empty());
    assert!(p.orphans.iter().all(|a| a.tenant == "clinic"));
    assert!(!p.orphans.is_empty());
    assert!(p.to_string().contains("orphans"), "{p}");

    let prune = Options {
        prune: true,
        ..Options::default()
    };
    let p = converge(&only_acme, &target, &prune).await;
    assert!(
        p.actions
            .iter()
            .all(|a| a.change == Change::Delete && a.address.tenant == "clinic")
    );
    // Deletes run in reverse dependency order.
    let kinds: Vec<Kind> = p.actions.iter().map(|a| a.address.kind).collect();
    let mut sorted = kinds.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(kinds, sorted);
    assert_eq!(p.kept.len(), 1, "the table stays");
    let left = target.observe(&["clinic".to_owned()].into()).await.unwrap();
    assert_eq!(
        left.resources.keys().map(|a| a.kind).collect::<Vec<_>>(),
        [Kind::Table]
    );

    let all = Options {
        prune: true,
        delete_data: true,
        ..Options::default()
    };
    converge(&only_acme, &target, &all).await;
    assert!(
        target
            .observe(&["clinic".to_owned()].into())
            .await
            .unwrap()
            .resources
            .is_empty()
    );
}

#[tokio::test]
async fn scope_limits_the_plan_and_failures_stay_with_their_tenant() {
    let d = desired_from(&[("acme", file("acme")), ("clinic", file("clinic"))]);
    let only = Options {
        tenants: ["clinic".to_owned()].into(),
        ..Options::default()
    };
    let p = plan(&d, &Observed::default(), &only);
    assert_eq!(p.tenants(), ["clinic".to_owned()].into());

    let target = Arc::new(MemoryTarget {
        fail_on: Some(crate::resource::Address::new(
            "acme",
            Kind::Function,
            "apifactory-acme-get",
        )),
        ..MemoryTarget::default()
    });
    let p = plan(&d, &Observed::default(), &Options::default());
    let report = apply(&p, target.clone(), 2, Arc::new(Quiet)).await;
    assert!(!report.ok());
    let acme = &report.tenants[0];
    assert!(
        acme.error
            .as_deref()
            .unwrap()
            .contains("apifactory-acme-get: injected failure")
    );
    assert!(acme.applied < acme.planned);
    let clinic = &report.tenants[1];
    assert_eq!(
        (clinic.error.as_ref(), clinic.applied),
        (None, clinic.planned)
    );
    assert!(
        report
            .to_string()
            .contains("1 tenant(s) applied, 1 failed."),
        "{report}"
    );
}

/// A target with quotas: the plan counts against them, shows the
/// lines only when one is near or over, and carries the refusal.
#[test]
fn the_plan_counts_against_the_targets_quotas() {
    use crate::quotas::{Account, Limits, Quota};
    let d = desired_from(&[("acme", file("acme")), ("clinic", file("clinic"))]);
    let with = |rest_apis: u64, overrides: &str| {
        let mut limits = Limits::aws();
        limits.override_with(overrides).unwrap();
        Observed {
            resources: BTreeMap::new(),
            vouched: BTreeSet::new(),
            pending: BTreeMap::new(),
            account: Some(Account {
                limits,
                counts: [(Quota::RestApis, rest_apis)].into(),
                not_counted: BTreeMap::new(),
            }),
        }
    };
    // Two tenants, two REST APIs to create.
    let p = plan(&d, &with(10, ""), &Options::default());
    assert!(p.refused().is_none());
    let q = p.quotas.as_ref().unwrap();
    let apis = q
        .checks
        .iter()
        .find(|c| c.quota == Quota::RestApis)
        .unwrap();
    assert_eq!((apis.existing, apis.creates, apis.projected), (10, 2, 12));
    // Only the quotas the target did not count are worth a line.
    let shown = p.to_string();
    assert!(!shown.contains("  !"), "{shown}");
    assert!(
        shown.contains("  ? usage plans per region: not counted"),
        "{shown}"
    );

    let p = plan(&d, &with(10, "rest_apis=11"), &Options::default());
    let why = p.refused().unwrap();
    assert!(
        why.contains(
            "regional REST APIs per region: 10 existing + 2 to create = 12, over the limit 11"
        ),
        "{why}"
    );
    assert!(p.to_string().contains("  x regional REST APIs"), "{p}");
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["quotas"]["checks"][0]["status"], json!("refused"));

    // Scoped to one tenant: only its API counts as created.
    let only = Options {
        tenants: ["clinic".to_owned()].into(),
        ..Options::default()
    };
    let p = plan(&d, &with(10, "rest_apis=11"), &only);
    assert!(p.refused().is_none(), "{p}");

    // A target without quotas (local) carries none, in text or JSON.
    let p = plan(&d, &Observed::default(), &Options::default());
    assert!(p.quotas.is_none());
    assert!(serde_json::to_value(&p).unwrap().get("quotas").is_none());
}

/// Adding an indexed field to a live tenant: on a target that builds
/// indexes in the background, its function updates wait for the index;
/// on one that does not (memory, local), nothing changes.
#[tokio::test]
async fn function_updates_wait_for_a_new_index_to_be_active() {
    let target = Arc::new(MemoryTarget::default());
    converge(
        &desired_from(&[("events", file("events"))]),
        &target,
        &Options::default(),
    )
    .await;
    let indexed = file("events").replace(
        "title     = { type = \"string\", required = true, max_length = 200 }",
        "title     = { type = \"string\", required = true, max_length = 200, index = true }",
    );
    assert_ne!(indexed, file("events"));
    let d = desired_from(&[("events", indexed)]);
    let table = Address::new("events", Kind::Table, "apifactory-events");
    let kinds = |p: &Plan| -> Vec<Kind> { p.actions.iter().map(|a| a.address.kind).collect() };

    // Indexes made at once (no `backfilling` reported): table and
    // functions change in the same plan, as before.
    let now = replan(&d, &target, &Options::default()).await;
    assert!(now.waiting.is_empty(), "{now}");
    assert!(kinds(&now).contains(&Kind::Table), "{now}");
    assert!(kinds(&now).contains(&Kind::Function), "{now}");

    // A target that backfills: the index is still to be created.
    let mut observed = target.observe(&BTreeSet::new()).await.unwrap();
    let have = observed.resources.get_mut(&table).unwrap();
    have.insert(BACKFILLING.into(), json!([]));
    let p = plan(&d, &observed, &Options::default());
    assert!(kinds(&p).contains(&Kind::Table), "{p}");
    assert!(!kinds(&p).contains(&Kind::Function), "{p}");
    assert_eq!(p.waiting.len(), 1, "{p}");
    let w = &p.waiting[0];
    assert_eq!(w.to_create, ["title"]);
    assert!(w.backfilling.is_empty());
    assert_eq!(w.held.len(), d.tenants["events"].functions.operations.len());
    assert!(w.held.iter().all(|a| a.kind == Kind::Function));
    let shown = p.to_string();
    assert!(
        shown.contains("  + index      by_title (created by this apply, then backfilling)"),
        "{shown}"
    );
    assert!(
        shown.contains("  = function   apifactory-events-search (update held back)"),
        "{shown}"
    );

    // Applied (the table gets the index, the role, API and stage
    // change; the functions do not), and backfilling: nothing to do
    // but wait.
    let report = apply(&p, target.clone(), 1, Arc::new(Quiet)).await;
    assert!(report.ok(), "{report}");
    let mut observed = target.observe(&BTreeSet::new()).await.unwrap();
    let have = observed.resources.get_mut(&table).unwrap();
    assert_eq!(have["indexes"]["title"], json!("S"));
    have.insert(BACKFILLING.into(), json!(["title"]));
    let p = plan(&d, &observed, &Options::default());
    assert!(p.is_empty(), "{p}");
    assert_eq!(p.waiting[0].backfilling, ["title"]);
    assert!(p.waiting[0].to_create.is_empty());
    let shown = p.to_string();
    assert!(
        shown.contains("  ~ index      by_title (backfilling)"),
        "{shown}"
    );
    assert!(shown.ends_with("No changes. Waiting for 1 index(es); 5 function update(s) held back until they are ACTIVE."), "{shown}");
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["waiting"][0]["backfilling"], json!(["title"]));
    assert_eq!(json["waiting"][0]["held"][0]["kind"], json!("function"));

    // ACTIVE: the functions move.
    observed
        .resources
        .get_mut(&table)
        .unwrap()
        .insert(BACKFILLING.into(), json!([]));
    let p = plan(&d, &observed, &Options::default());
    assert!(p.waiting.is_empty(), "{p}");
    let mut moved = vec![Kind::Function; 5];
    moved.push(Kind::Stamp);
    assert_eq!(kinds(&p), moved, "{p}");
}

fn stamp_of(target: &MemoryTarget, tenant: &str) -> Option<Value> {
    let all = target.resources.lock().unwrap();
    all.resources
        .get(&Address::new(tenant, Kind::Stamp, tenant))
        .map(|a| a[FINGERPRINT].clone())
}

fn lines(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .map(|a| match &a.change {
            Change::Update { fields } => format!(
                "~ {} {}",
                a.address,
                fields
                    .iter()
                    .map(|f| format!("{}:{}->{}", f.field, short(&f.from), short(&f.to)))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Change::Create => format!("+ {}", a.address),
            Change::Delete => format!("- {}", a.address),
        })
        .collect()
}

/// The stamp is each tenant's last action, planned only when its
/// desired state changed or it is missing, and records the fingerprint.
#[tokio::test]
async fn the_stamp_is_written_last_and_only_when_something_changed() {
    let d = desired_from(&[("acme", file("acme")), ("clinic", file("clinic"))]);
    let target = Arc::new(MemoryTarget::default());
    let first = converge(&d, &target, &Options::default()).await;
    for tenant in ["acme", "clinic"] {
        let last = first
            .actions
            .iter()
            .rfind(|a| a.address.tenant == tenant)
            .unwrap();
        assert_eq!(last.address, Address::new(tenant, Kind::Stamp, tenant));
        assert_eq!(last.change, Change::Create);
        let want = &d.resources[&last.address][FINGERPRINT];
        assert_eq!(stamp_of(&target, tenant).as_ref(), Some(want));
    }
    // Each tenant's lines together, its stamp last.
    let shown = first.to_string();
    assert_eq!(shown.matches("\nclinic\n").count(), 1, "{shown}");
    assert!(shown.contains("  + stamp      acme\nclinic\n"), "{shown}");
    assert!(replan(&d, &target, &Options::default()).await.is_empty());

    // A changed field: that change, then the stamp; clinic untouched.
    let changed = desired_from(&[
        ("acme", file("acme").replace("rate = 50", "rate = 60")),
        ("clinic", file("clinic")),
    ]);
    let p = replan(&changed, &target, &Options::default()).await;
    let (before, after) = (
        short(&d.resources[&Address::new("acme", Kind::Stamp, "acme")][FINGERPRINT]),
        short(&changed.resources[&Address::new("acme", Kind::Stamp, "acme")][FINGERPRINT]),
    );
    assert_ne!(before, after);
    assert_eq!(
        lines(&p),
        [
            "~ usage_plan apifactory-acme rate:50.0->60.0".to_owned(),
            format!("~ stamp acme fingerprint:{before}->{after}"),
        ]
    );
    assert!(
        p.to_string().contains(&format!(
            "  ~ stamp      acme  (fingerprint: {before} -> {after})"
        )),
        "{p}"
    );

    // A stamp gone (never written, or lost): written again, alone.
    target
        .resources
        .lock()
        .unwrap()
        .resources
        .remove(&Address::new("clinic", Kind::Stamp, "clinic"));
    let p = replan(&d, &target, &Options::default()).await;
    assert_eq!(lines(&p), ["+ stamp clinic"]);
}

/// On a target that reads some kinds only for a tenant whose stamp does
/// not match, a plan that changes one of them clears the stamp before
/// its first change: stopped midway, the apply leaves no stamp, so a
/// file reverted to what the old stamp recorded is still read whole.
#[tokio::test]
async fn a_stamp_is_cleared_first_and_a_failed_apply_leaves_none() {
    let d = desired_from(&[("acme", file("acme"))]);
    let target = Arc::new(MemoryTarget::default());
    converge(&d, &target, &Options::default()).await;
    let old = stamp_of(&target, "acme").unwrap();
    target.resources.lock().unwrap().vouched = [Kind::Stage, Kind::UsagePlan].into();

    let changed = desired_from(&[("acme", file("acme").replace("rate = 50", "rate = 60"))]);
    let p = replan(&changed, &target, &Options::default()).await;
    let new = short(&changed.resources[&Address::new("acme", Kind::Stamp, "acme")][FINGERPRINT]);
    assert_eq!(
        lines(&p),
        [
            format!("~ stamp acme fingerprint:{}->null", short(&old)),
            "~ usage_plan apifactory-acme rate:50.0->60.0".to_owned(),
            format!("~ stamp acme fingerprint:null->{new}"),
        ]
    );

    // The usage plan's update fails: the stamp stays cleared.
    let failing = Arc::new(MemoryTarget {
        resources: std::sync::Mutex::new(target.resources.lock().unwrap().clone()),
        fail_on: Some(Address::new("acme", Kind::UsagePlan, "apifactory-acme")),
        ..MemoryTarget::default()
    });
    let report = apply(&p, failing.clone(), 1, Arc::new(Quiet)).await;
    assert!(!report.ok());
    assert_eq!(report.tenants[0].applied, 1, "{report}");
    assert_eq!(stamp_of(&failing, "acme"), Some(Value::Null));
    // Back to the old file: the stamp does not match, so the next run
    // reads the tenant whole; the plan writes the stamp again.
    let p = replan(&d, &failing, &Options::default()).await;
    assert_eq!(
        lines(&p),
        [format!("~ stamp acme fingerprint:null->{}", short(&old))]
    );

    // A change to a kind read from the lists anyway (a function's
    // memory) needs no clearing: the stamp just moves.
    let bigger = desired_from(&[(
        "acme",
        file("acme").replace("memory_mb = 256", "memory_mb = 512"),
    )]);
    assert_ne!(
        bigger.resources, d.resources,
        "the file sets memory_mb = 256"
    );
    let p = replan(&bigger, &target, &Options::default()).await;
    assert!(p.actions[0].address.kind == Kind::Function, "{p}");
    assert_eq!(p.actions.last().unwrap().address.kind, Kind::Stamp, "{p}");
    assert_eq!(
        p.actions
            .iter()
            .filter(|a| a.address.kind == Kind::Stamp)
            .count(),
        1,
        "{p}"
    );
}

/// A tenant waiting for an index has function updates held back: it is
/// not converged, so its stamp is not written.
#[tokio::test]
async fn a_tenant_waiting_for_an_index_gets_no_stamp() {
    let target = Arc::new(MemoryTarget::default());
    converge(
        &desired_from(&[("events", file("events"))]),
        &target,
        &Options::default(),
    )
    .await;
    let indexed = file("events").replace(
        "title     = { type = \"string\", required = true, max_length = 200 }",
        "title     = { type = \"string\", required = true, max_length = 200, index = true }",
    );
    let d = desired_from(&[("events", indexed)]);
    let mut observed = target.observe(&BTreeSet::new()).await.unwrap();
    observed
        .resources
        .get_mut(&Address::new("events", Kind::Table, "apifactory-events"))
        .unwrap()
        .insert(BACKFILLING.into(), json!([]));
    let p = plan(&d, &observed, &Options::default());
    assert_eq!(p.waiting.len(), 1, "{p}");
    assert!(
        p.actions.iter().all(|a| a.address.kind != Kind::Stamp),
        "{p}"
    );
}

/// A tenant file naming an existing table plans to adopt it under that
/// name, says so, and a destroy keeps it even with --delete-data, unless
/// --delete-adopted-data is given too.
#[tokio::test]
async fn an_adopted_table_is_planned_as_adopted_and_kept_by_delete_data() {
    let text = file("acme").replacen(
        "[collection]\n",
        "[collection]\ntable = \"seed-accounts\"\n",
        1,
    );
    let d = desired_from(&[("acme", text)]);
    let target = Arc::new(MemoryTarget::default());
    let first = converge(&d, &target, &Options::default()).await;
    let table = Address::new("acme", Kind::Table, "seed-accounts");
    let create = first.actions.iter().find(|a| a.address == table).unwrap();
    assert_eq!(create.change, Change::Create);
    assert_eq!(create.attrs[ADOPTED], json!(true));
    assert!(
        first.to_string().contains(
            "+ table      seed-accounts  (adopt: the existing table is taken over, not created)"
        ),
        "{first}"
    );
    assert!(
        !first
            .actions
            .iter()
            .any(|a| a.address.kind == Kind::Table
                && a.address.name == runtime::names::table("acme")),
        "no table of apifactory's own name"
    );
    // The functions and their role use the adopted table.
    let function = &d.resources[&Address::new(
        "acme",
        Kind::Function,
        runtime::names::function("acme", runtime::Operation::Get),
    )];
    assert_eq!(function[crate::spec::TABLE], json!("seed-accounts"));
    assert!(replan(&d, &target, &Options::default()).await.is_empty());

    let none = Desired::default();
    let destroy = |delete_adopted_data| Options {
        tenants: ["acme".to_owned()].into(),
        prune: true,
        delete_data: true,
        delete_adopted_data,
        ..Options::default()
    };
    let p = converge(&none, &target, &destroy(false)).await;
    assert_eq!(p.kept_adopted, std::slice::from_ref(&table));
    assert!(p.kept.is_empty());
    assert!(p.actions.iter().all(|a| a.address != table));
    assert!(p.to_string().contains("--delete-adopted-data"), "{p}");
    let p = converge(&none, &target, &destroy(true)).await;
    assert!(p.kept_adopted.is_empty());
    assert_eq!(
        p.actions.iter().map(|a| &a.address).collect::<Vec<_>>(),
        [&table]
    );
}
