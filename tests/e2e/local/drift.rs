//! Drift on the local target: the deployed state edited by hand (an
//! attribute changed, a resource removed, one added) is reported by
//! `drift`, with exit status 2, and repaired by `apply --refresh`.

use std::path::Path;
use std::process::{Command, Output};

use apifactory_tests::{bin_path, repo_root};
use serde_json::{Value, json};

fn apifactory(data: &Path, args: &[&str]) -> Output {
    Command::new(bin_path("apifactory"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .current_dir(repo_root())
        .output()
        .expect("apifactory runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sql(data: &Path, statement: &str) {
    let db = rusqlite::Connection::open(data.join("apifactory.sqlite")).unwrap();
    let changed = db.execute(statement, []).unwrap();
    assert_eq!(changed, 1, "{statement}");
}

#[test]
fn drift_reports_hand_edits_of_the_local_state_and_apply_refresh_repairs_them() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let out = apifactory(data, &["apply", "--tenant", "clinic", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = apifactory(data, &["drift", "--tenant", "clinic"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "No drift: the target matches the tenant files.\n"
    );

    // By hand: a log group's retention, a function removed, a stage more.
    sql(
        data,
        "UPDATE deployed SET attrs = json_set(attrs, '$.retention_days', 1) \
         WHERE kind = 'log_group' AND name = '/aws/lambda/apifactory-clinic-get'",
    );
    sql(
        data,
        "DELETE FROM deployed WHERE kind = 'function' AND name = 'apifactory-clinic-search'",
    );
    sql(
        data,
        "INSERT INTO deployed (tenant, kind, name, attrs) VALUES ('clinic', 'stage', 'extra', '{}')",
    );

    let out = apifactory(data, &["drift", "--tenant", "clinic", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let retention = 365;
    assert_eq!(
        report,
        json!({"differences": [
            {"tenant": "clinic", "kind": "log_group", "name": "/aws/lambda/apifactory-clinic-get",
             "attribute": "retention_days", "expected": retention, "found": 1},
            {"tenant": "clinic", "kind": "function", "name": "apifactory-clinic-search",
             "attribute": "exists", "expected": true, "found": false},
            {"tenant": "clinic", "kind": "stage", "name": "extra",
             "attribute": "exists", "expected": false, "found": true},
        ]}),
        "{report:#}"
    );
    let out = apifactory(data, &["drift", "--tenant", "clinic"]);
    assert_eq!(out.status.code(), Some(2));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("retention_days: expected 365, found 1")
            && shown.ends_with("3 difference(s)\n"),
        "{shown}"
    );

    let out = apifactory(data, &["apply", "--tenant", "clinic", "--refresh", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = apifactory(data, &["drift", "--tenant", "clinic", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report, json!({"differences": []}));

    // An error is exit status 1, not a report.
    let out = apifactory(data, &["drift", "--tenant", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
}
