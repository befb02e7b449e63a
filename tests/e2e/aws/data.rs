//! `apifactory data` on the AWS target, against this run's moto behind the
//! realism layer, through the real CLI: items go local -> file -> DynamoDB
//! -> file and come back byte for byte (numbers, booleans, lists and
//! revisions included); the conflict modes read DynamoDB before writing.
//! The tenant is a copy of bookshop under a unique id; its table is made
//! by hand, as `apply` would (only the table matters here).

use std::path::{Path, PathBuf};
use std::process::Command;

use apifactory_tests::{bin_path, realistic_endpoint, repo_root, sdk_config, unique_name};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use runtime::names;
use serde_json::Value;

struct Tenant {
    dir: tempfile::TempDir,
    id: String,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Tenant {
    /// bookshop under a unique id, without its custom domain.
    fn new() -> Tenant {
        let dir = tempfile::tempdir().unwrap();
        let id = unique_name("data");
        let text = std::fs::read_to_string(repo_root().join("tenants/bookshop.toml")).unwrap();
        let start = text.find("[domain]").unwrap();
        let end = text.find("[logs]").unwrap();
        let text = format!("{}{}", &text[..start], &text[end..]);
        std::fs::create_dir(dir.path().join("tenants")).unwrap();
        std::fs::write(dir.path().join(format!("tenants/{id}.toml")), text).unwrap();
        Tenant { dir, id }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `apifactory <args>` on the local target (`aws` false) or on moto.
    fn run(&self, aws: bool, args: &[&str]) -> Out {
        let mut c = Command::new(bin_path("apifactory"));
        c.arg("--tenants").arg(self.path("tenants")).args(args);
        if aws {
            c.args(["--target", "aws", "--endpoint-url", realistic_endpoint()])
                .env_remove("AWS_ENDPOINT_URL")
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_REGION", "us-east-1")
                // AWS's own limits: the calls go through the pacer.
                .env("APIFACTORY_PACE", "1");
        } else {
            c.arg("--data-dir").arg(self.path("data"));
        }
        let out = c.current_dir(repo_root()).output().unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, aws: bool, args: &[&str]) -> String {
        let out = self.run(aws, args);
        assert!(
            out.ok,
            "apifactory {args:?} (aws: {aws}) failed: {}",
            out.stderr
        );
        out.stdout
    }

    fn import(&self, aws: bool, file: &Path, extra: &[&str]) -> Value {
        let mut args = vec!["data", "import", &self.id, file.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&self.ok(aws, &args)).unwrap()
    }

    fn export(&self, aws: bool, out: &Path) -> String {
        self.ok(
            aws,
            &["data", "export", &self.id, "--out", out.to_str().unwrap()],
        );
        std::fs::read_to_string(out).unwrap()
    }
}

/// Books in no particular order, some without a revision or a default
/// field, with numbers of every shape the store must keep exactly.
fn books(n: usize) -> String {
    let prices = ["12.5", "0.1", "3", "1e-7", "9999.99", "0", "7.000001"];
    (0..n)
        .rev()
        .map(|i| {
            let rev = if i % 3 == 0 {
                String::new()
            } else {
                format!("\"_rev\":\"r{i}\",")
            };
            let stock = if i % 4 == 0 {
                String::new()
            } else {
                format!(",\"in_stock\":{}", i % 2 == 0)
            };
            format!(
                "{{\"isbn\":\"978-{i:07}\",{rev}\"title\":\"Book {i} \\u00e9\",\
                 \"authors\":[\"A {i}\",\"B\"],\"price\":{},\"pages\":{}{stock}}}\n",
                prices[i % prices.len()],
                1 + i % 900
            )
        })
        .collect()
}

async fn make_table(tenant: &str) {
    let ddb = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    ddb.create_table()
        .table_name(names::table(tenant))
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("isbn")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("isbn")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn local_to_file_to_dynamodb_to_file_is_the_same_bytes() {
    let t = Tenant::new();
    t.ok(false, &["apply", "--tenant", &t.id, "-y"]);
    let out = t.run(true, &["data", "export", &t.id]);
    assert!(
        !out.ok && out.stderr.contains("does not exist"),
        "no table yet: {}",
        out.stderr
    );
    make_table(&t.id).await;

    let source = t.path("books.jsonl");
    std::fs::write(&source, books(260)).unwrap();
    let c = t.import(false, &source, &[]);
    assert_eq!(c["written"], 260);
    let local = t.export(false, &t.path("local.jsonl"));
    assert_eq!(local.lines().count(), 260);
    assert!(local.contains("\"price\":1e-7") && local.contains("\"price\":7.000001"));

    let c = t.import(true, &t.path("local.jsonl"), &[]);
    assert_eq!(c["written"], 260, "{c}");
    let aws = t.export(true, &t.path("aws.jsonl"));
    assert!(
        aws == local,
        "the AWS export differs from the local one:\n{aws}\n--\n{local}"
    );

    // Again: every line is unchanged (BatchGetItem saw them all).
    let c = t.import(true, &t.path("aws.jsonl"), &[]);
    assert_eq!(c["unchanged"], 260, "{c}");

    // One changed line: fail writes nothing, replace writes that one.
    let changed = local.replacen("\"title\":\"Book 5 ", "\"title\":\"Changed ", 1);
    assert_ne!(changed, local);
    std::fs::write(t.path("changed.jsonl"), &changed).unwrap();
    let file = t.path("changed.jsonl").display().to_string();
    let out = t.run(true, &["data", "import", &t.id, &file]);
    assert!(
        !out.ok && out.stderr.contains("978-0000005"),
        "{}",
        out.stderr
    );
    assert_eq!(
        t.export(true, &t.path("again.jsonl")),
        local,
        "nothing written"
    );
    let c = t.import(
        true,
        &t.path("changed.jsonl"),
        &["--on-conflict", "replace"],
    );
    assert_eq!(
        (c["replaced"].as_u64(), c["unchanged"].as_u64()),
        (Some(1), Some(259))
    );
    let after = t.export(true, &t.path("after.jsonl"));
    let line = |text: &str| {
        text.lines()
            .find(|l| l.contains("978-0000005"))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line(&after).contains("\"title\":\"Changed é\""),
        "{}",
        line(&after)
    );
    assert!(
        !after.is_empty() && after != changed,
        "a new revision for the new content"
    );
}
