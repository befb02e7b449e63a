//! The quota checks' unit tests: counts, limits and the report.

use serde_json::json;

use super::*;
use crate::resource::attrs;

fn account(counts: &[(Quota, u64)], overrides: &str) -> Account {
    let mut limits = Limits::aws();
    limits.override_with(overrides).unwrap();
    Account {
        limits,
        counts: counts.iter().copied().collect(),
        not_counted: BTreeMap::new(),
    }
}

fn addresses(kind: Kind, n: usize) -> Vec<Address> {
    (0..n)
        .map(|i| Address::new(&format!("t{i}"), kind, format!("r{i}")))
        .collect()
}

fn run(account: &Account, steps: &[(&Address, Step)]) -> Report {
    check(account, steps, &BTreeMap::new(), &BTreeMap::new(), &|_| {
        true
    })
}

fn get(report: &Report, quota: Quota) -> &Check {
    report.checks.iter().find(|c| c.quota == quota).unwrap()
}

#[test]
fn projected_is_existing_plus_creates_minus_deletes() {
    let apis = addresses(Kind::Api, 5);
    let steps = [
        (&apis[0], Step::Create),
        (&apis[1], Step::Create),
        (&apis[2], Step::Create),
        (&apis[3], Step::Delete),
        (&apis[4], Step::Update),
    ];
    let all = [
        (Quota::RestApis, 100),
        (Quota::UsagePlans, 7),
        (Quota::ApiKeys, 0),
        (Quota::DomainNames, 1),
        (Quota::Roles, 12),
    ];
    let r = run(&account(&all, ""), &steps);
    let apis = get(&r, Quota::RestApis);
    assert_eq!(
        (apis.existing, apis.creates, apis.deletes, apis.projected),
        (100, 3, 1, 102)
    );
    assert_eq!((apis.limit, apis.status), (600, Status::Ok));
    // Other kinds' steps do not count against it.
    assert_eq!(get(&r, Quota::UsagePlans).projected, 7);
    assert!(r.refused().is_none());
    assert!(!r.has_warnings(), "{r}");
    assert_eq!(r.to_string(), "");
}

#[test]
fn within_ten_percent_warns_and_one_below_does_not() {
    let keys = addresses(Kind::ApiKey, 1);
    let steps = [(&keys[0], Step::Create)];
    // 8,999 + 1 = 9,000 of 10,000: exactly 90 %.
    let r = run(&account(&[(Quota::ApiKeys, 8_999)], ""), &steps);
    assert_eq!(get(&r, Quota::ApiKeys).status, Status::Near);
    assert!(r.refused().is_none());
    let shown = r.to_string();
    assert!(
            shown.contains("  ! API keys per region: 8999 existing + 1 to create = 9000 of 10000, 90 %: within 10 % of the limit 10000 (AWS's default; AWS does not raise it;"),
            "{shown}"
        );
    let r = run(&account(&[(Quota::ApiKeys, 8_998)], ""), &steps);
    assert_eq!(get(&r, Quota::ApiKeys).status, Status::Ok);
}

#[test]
fn over_a_hard_limit_is_refused_over_an_adjustable_one_warns() {
    let apis = addresses(Kind::Api, 2);
    let plans = addresses(Kind::UsagePlan, 2);
    let steps = [
        (&apis[0], Step::Create),
        (&apis[1], Step::Create),
        (&plans[0], Step::Create),
        (&plans[1], Step::Create),
    ];
    let a = account(&[(Quota::RestApis, 599), (Quota::UsagePlans, 299)], "");
    let r = run(&a, &steps);
    let apis = get(&r, Quota::RestApis);
    assert_eq!((apis.projected, apis.status), (601, Status::Refused));
    let plans = get(&r, Quota::UsagePlans);
    assert_eq!((plans.projected, plans.status), (301, Status::Over));
    let why = r.refused().unwrap();
    assert!(
            why.contains("regional REST APIs per region: 599 existing + 2 to create = 601, over the limit 600 (AWS's default; AWS does not raise it; https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-execution-service-limits-table.html)"),
            "{why}"
        );
    assert!(why.starts_with("the plan would cross 1 quota(s)"), "{why}");
    assert!(!why.contains("usage plans"), "{why}");
    let shown = r.to_string();
    assert!(shown.contains("  x regional REST APIs"), "{shown}");
    assert!(shown.contains("REFUSED"), "{shown}");
    assert!(
            shown.contains("  ! usage plans per region: 299 existing + 2 to create = 301: over the limit 300 (AWS's default; AWS raises it on request;"),
            "{shown}"
        );
}

#[test]
fn a_plan_that_adds_nothing_is_never_refused() {
    // Already over (a lowered limit): deleting must stay possible.
    let apis = addresses(Kind::Api, 1);
    let r = run(
        &account(&[(Quota::RestApis, 5)], "rest_apis=3"),
        &[(&apis[0], Step::Delete)],
    );
    let c = get(&r, Quota::RestApis);
    assert_eq!((c.projected, c.status), (4, Status::Over));
    assert!(r.refused().is_none());
}

#[test]
fn the_accounts_own_quota_is_hard_and_replaces_the_default() {
    let roles = addresses(Kind::Role, 1);
    let mut a = account(&[(Quota::Roles, 1_500)], "");
    assert!(!a.limits.get(Quota::Roles).hard);
    a.limits.from_account(Quota::Roles, 1_500);
    let limit = a.limits.get(Quota::Roles);
    assert_eq!(
        (limit.value, limit.from, limit.hard),
        (1_500, LimitFrom::Account, true)
    );
    let r = run(&a, &[(&roles[0], Step::Create)]);
    assert_eq!(get(&r, Quota::Roles).status, Status::Refused);
    assert!(
        r.refused()
            .unwrap()
            .contains("over the limit 1500 (the account's quota;"),
        "{r:?}"
    );
    // A test override wins over the account's figure.
    let mut a = account(&[(Quota::Roles, 2)], "roles=3");
    a.limits.from_account(Quota::Roles, 1_000);
    assert_eq!(a.limits.get(Quota::Roles).value, 3);
    let r = run(&a, &[(&roles[0], Step::Create)]);
    assert_eq!(get(&r, Quota::Roles).status, Status::Near);
}

#[test]
fn the_test_override_parses_and_names_its_mistakes() {
    let mut l = Limits::aws();
    l.override_with(" rest_apis=3, api_keys = 10 ,").unwrap();
    assert_eq!(l.get(Quota::RestApis).value, 3);
    assert_eq!(l.get(Quota::RestApis).from, LimitFrom::TestOverride);
    assert!(l.get(Quota::RestApis).hard, "an override keeps hardness");
    assert_eq!(l.get(Quota::ApiKeys).value, 10);
    assert_eq!(l.get(Quota::UsagePlans).value, 300);
    let err = Limits::aws().override_with("apis=3").unwrap_err();
    assert!(err.contains("unknown quota \"apis\""), "{err}");
    assert!(err.contains("rest_apis, usage_plans"), "{err}");
    let err = Limits::aws().override_with("rest_apis=-1").unwrap_err();
    assert!(
        err.contains("expected a whole number, found \"-1\""),
        "{err}"
    );
    let err = Limits::aws().override_with("rest_apis").unwrap_err();
    assert!(err.contains("expected name=number"), "{err}");
}

#[test]
fn the_defaults_are_awss() {
    let l = Limits::aws();
    let table: Vec<(u64, bool)> = Quota::ALL
        .iter()
        .map(|q| (l.get(*q).value, l.get(*q).hard))
        .collect();
    assert_eq!(
        table,
        [
            (600, true),
            (300, false),
            (10_000, true),
            (120, false),
            (1_000, false),
            (20, false),
            (10, false)
        ]
    );
}

#[test]
fn indexes_per_table_come_from_desired_and_observed() {
    let table = Address::new("acme", Kind::Table, "apifactory-acme");
    let with = |fields: &[&str]| {
        let m: serde_json::Map<String, Value> =
            fields.iter().map(|f| (f.to_string(), json!("S"))).collect();
        attrs([("key", json!("id")), ("indexes", Value::Object(m))])
    };
    let desired = BTreeMap::from([(table.clone(), with(&["id", "a", "b", "c"]))]);
    let observed = BTreeMap::from([(table.clone(), with(&["a", "z"]))]);
    let a = account(&[], "indexes_per_table=3");
    let r = check(&a, &[], &desired, &observed, &|_| true);
    let c = get(&r, Quota::IndexesPerTable);
    // The key is not an index: a, b, c wanted; a, z there.
    assert_eq!(
        (c.existing, c.creates, c.deletes, c.projected),
        (2, 2, 1, 3)
    );
    assert_eq!(c.of.as_deref(), Some("apifactory-acme"));
    assert_eq!(c.status, Status::Near);
    // Out of scope: not counted.
    let r = check(&a, &[], &desired, &observed, &|_| false);
    assert!(r.checks.iter().all(|c| c.quota != Quota::IndexesPerTable));
    // Account-wide quotas the target did not count are said so.
    assert!(
        r.to_string().contains(
            "  ? regional REST APIs per region: not counted (the target did not list it)"
        ),
        "{r}"
    );
}

#[test]
fn per_item_quotas_show_the_nearest_or_every_warning() {
    let mut desired = BTreeMap::new();
    for t in ["a", "b"] {
        desired.insert(
            Address::new(t, Kind::UsagePlan, format!("apifactory-{t}")),
            Attrs::new(),
        );
        for k in ["k1", "k2"] {
            desired.insert(
                Address::new(t, Kind::ApiKey, format!("apifactory-{t}-{k}")),
                Attrs::new(),
            );
        }
    }
    let existing = Address::new("a", Kind::ApiKey, "apifactory-a-k1");
    let observed = BTreeMap::from([(existing, Attrs::new())]);
    let r = check(&account(&[], ""), &[], &desired, &observed, &|_| true);
    let keys: Vec<&Check> = r
        .checks
        .iter()
        .filter(|c| c.quota == Quota::UsagePlansPerKey)
        .collect();
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].projected, keys[0].status), (1, Status::Ok));
    let r = check(
        &account(&[], "usage_plans_per_key=1"),
        &[],
        &desired,
        &observed,
        &|_| true,
    );
    let near: Vec<(&str, u64, u64)> = r
        .checks
        .iter()
        .filter(|c| c.quota == Quota::UsagePlansPerKey)
        .map(|c| (c.of.as_deref().unwrap(), c.existing, c.creates))
        .collect();
    assert_eq!(
        near,
        [
            ("apifactory-a-k1", 1, 0),
            ("apifactory-a-k2", 0, 1),
            ("apifactory-b-k1", 0, 1),
            ("apifactory-b-k2", 0, 1)
        ]
    );
    assert!(r.refused().is_none(), "adjustable: a warning only");
}

#[test]
fn the_report_serializes_for_json() {
    let apis = addresses(Kind::Api, 1);
    let r = run(
        &account(&[(Quota::RestApis, 2)], "rest_apis=3"),
        &[(&apis[0], Step::Create)],
    );
    let v = serde_json::to_value(&r).unwrap();
    let apis = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["quota"] == json!("rest_apis"))
        .unwrap();
    assert_eq!(apis["existing"], json!(2));
    assert_eq!(apis["projected"], json!(3));
    assert_eq!(apis["limit"], json!(3));
    assert_eq!(apis["limit_from"], json!("test_override"));
    assert_eq!(apis["status"], json!("near"));
    assert_eq!(apis["hard"], json!(true));
    assert_eq!(
        v["not_counted"]["usage_plans"],
        json!("the target did not list it")
    );
}

#[test]
fn an_accounts_roles_are_summed_over_its_cells() {
    let mut limits = Limits::aws();
    limits.from_account(Quota::Roles, 10);
    // Each of two cells adding 3 to 6 existing fits; both together do not.
    assert_eq!(account_roles(&limits, 6, 3).refused(), None);
    let both = account_roles(&limits, 6, 6);
    assert_eq!(both.checks[0].status, Status::Refused);
    assert_eq!(both.checks[0].projected, 12);
    assert!(both.refused().unwrap().contains("IAM roles per account"));
    // Over AWS's adjustable default, uncounted by the account: a warning.
    let warned = account_roles(&Limits::aws(), 999, 2);
    assert_eq!(warned.checks[0].status, Status::Over);
    assert_eq!(warned.refused(), None);
}
