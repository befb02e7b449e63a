//! A tenant file's fields changed over items already stored, on the AWS
//! target (moto): `plan --check-data` reads every item with a parallel
//! Scan and counts those the new rules make invalid, with their ids;
//! without the flag the plan says the items were not checked (a Scan
//! costs read capacity); `apply --check-data` refuses a change that
//! strands items, and `apply` without it goes on unchecked.

use std::path::Path;
use std::process::Command;

use apifactory_tests::aws::small_artifact;
use apifactory_tests::{bin_path, dynamo_client, plain_endpoint, repo_root, unique_name};
use aws_sdk_dynamodb::types::AttributeValue;
use runtime::names;
use serde_json::{Value, json};

/// `apifactory <args> --target aws` on moto: exit status, stdout, stderr.
fn run(dir: &Path, id: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(bin_path("apifactory"))
        .arg("--tenants")
        .arg(dir)
        .args(args)
        .args(["--target", "aws", "--endpoint-url", plain_endpoint()])
        .arg("--artifact")
        .arg(small_artifact())
        .args(["--tenant", id])
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("APIFACTORY_PACE", "off")
        .current_dir(repo_root())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tenant(max_length: u32) -> String {
    format!(
        "[tenant]\ndisplay_name = \"Gigs\"\n\n[collection]\nname = \"gigs\"\n\n[collection.fields]\ntitle = {{ type = \"string\", max_length = {max_length} }}\n\n[usage_plan]\nrate = 10\nburst = 10\n\n[[clients]]\nname = \"app\"\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_check_data_scans_the_table_and_apply_refuses_what_strands_items() {
    let dir = tempfile::tempdir().unwrap();
    let id = unique_name("schema");
    let file = dir.path().join(format!("{id}.toml"));
    std::fs::write(&file, tenant(200)).unwrap();
    let (code, _, stderr) = run(dir.path(), &id, &["apply", "--yes"]);
    assert_eq!(code, Some(0), "{stderr}");

    // 40 items, as the functions store them; every fourth has a long title.
    let ddb = dynamo_client().await;
    let table = names::table(&id);
    for n in 0..40 {
        let title = if n % 4 == 0 { "A long title" } else { "Short" };
        ddb.put_item()
            .table_name(&table)
            .item("id", AttributeValue::S(format!("g{n:02}")))
            .item("_rev", AttributeValue::S("r".into()))
            .item("title", AttributeValue::S(title.into()))
            .send()
            .await
            .unwrap();
    }

    std::fs::write(&file, tenant(5)).unwrap();
    let (code, plan, stderr) = run(dir.path(), &id, &["plan"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        plan.contains(&format!("{id}: stored items not checked (use --check-data")),
        "{plan}"
    );
    let (_, json, _) = run(dir.path(), &id, &["plan", "--json"]);
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        json["data"],
        json!([{"tenant": id, "checked": null, "findings": []}])
    );

    let (code, json, stderr) = run(dir.path(), &id, &["plan", "--json", "--check-data"]);
    assert_eq!(code, Some(0), "{stderr}");
    let json: Value = serde_json::from_str(&json).unwrap();
    let data = &json["data"][0];
    assert_eq!(data["checked"], 40, "{data:#}");
    assert_eq!(data["findings"].as_array().unwrap().len(), 1, "{data:#}");
    let title = &data["findings"][0];
    assert_eq!(title["field"], "title");
    assert_eq!(title["invalid"], 10);
    assert_eq!(title["examples"], json!(["g00", "g04", "g08"]));
    assert_eq!(
        title["problem"],
        "must be at most 5 characters long, found 12"
    );
    // The text says the same.
    let (_, plan, _) = run(dir.path(), &id, &["plan", "--check-data"]);
    assert!(
        plan.contains(&format!("{id}: 40 stored item(s) read\n  ~ field      title: 10 stored item(s) break it, e.g. g00, g04, g08")),
        "{plan}"
    );

    let (code, _, stderr) = run(dir.path(), &id, &["apply", "--yes", "--check-data"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("stored items would no longer validate; nothing was changed")
            && stderr.contains(&format!("{id}: title: 10 stored item(s) break it")),
        "{stderr}"
    );
    // Refused before any write: the functions still have the old file.
    let (_, json, _) = run(dir.path(), &id, &["plan", "--json"]);
    let json: Value = serde_json::from_str(&json).unwrap();
    assert!(
        json["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "function"),
        "{json:#}"
    );

    // Without --check-data, apply on AWS does not read the items.
    let (code, _, stderr) = run(dir.path(), &id, &["apply", "--yes"]);
    assert_eq!(code, Some(0), "{stderr}");
}
