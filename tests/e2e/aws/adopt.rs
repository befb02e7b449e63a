//! Moving an existing API: the stack apifactory replaces (a table keyed on
//! `id` holding items without `_rev`, an API key its clients already use),
//! built here by hand with the SDK on this run's moto, then adopted
//! through the real CLI: the plan says "adopt", apply takes the table over
//! (tagged, not recreated, its items still there, the file's index
//! built), `keys import` takes the key over (bound to the tenant's usage
//! plan), and the old items answer to the old key through the runtime on
//! DynamoDB and through the local target. Errors: a table keyed otherwise
//! changes nothing, a key value of 19 or 129 characters changes nothing,
//! and destroy --delete-data keeps the adopted table.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apifactory_tests::server::Server;
use apifactory_tests::{bin_path, realistic_endpoint, repo_root, sdk_config_at, unique_name};
use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use aws_lambda_events::encodings::Body;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as Av, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use http::header::{CONTENT_TYPE, HeaderValue};
use runtime::dynamo::DynamoStore;
use runtime::{Api, Tenant, names};
use serde_json::{Value, json};

use apifactory_tests::aws::{small_artifact, usage_plan_keys, usage_plans};

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// A tenant file adopting `table`, in a folder of its own.
struct Seeded {
    dir: tempfile::TempDir,
    id: String,
}

impl Seeded {
    fn new(table: &str) -> Seeded {
        let dir = tempfile::tempdir().unwrap();
        let id = unique_name("adopt");
        let text = format!(
            r#"[tenant]
display_name = "Seed accounts"

[collection]
name = "accounts"
table = "{table}"

[collection.fields]
name  = {{ type = "string", required = true }}
email = {{ type = "string", index = true }}

[usage_plan]
rate = 50
burst = 100
"#
        );
        std::fs::write(dir.path().join(format!("{id}.toml")), text).unwrap();
        Seeded { dir, id }
    }

    fn tenant(&self) -> Tenant {
        Tenant::load(&self.dir.path().join(format!("{}.toml", self.id))).unwrap()
    }

    /// `apifactory <args>` on `target`, `stdin` fed to it.
    fn run_on(&self, target: &[&str], args: &[&str], stdin: &str) -> Out {
        let mut c = Command::new(bin_path("apifactory"));
        c.arg("--tenants")
            .arg(self.dir.path())
            .args(args)
            .args(target)
            .env_remove("AWS_ENDPOINT_URL")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("APIFACTORY_PACE", "off")
            .current_dir(repo_root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if target.contains(&"aws") && matches!(args.first(), Some(&"plan" | &"apply")) {
            c.arg("--artifact").arg(small_artifact());
        }
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn aws(&self, args: &[&str], stdin: &str) -> Out {
        self.run_on(
            &["--target", "aws", "--endpoint-url", realistic_endpoint()],
            args,
            stdin,
        )
    }
}

fn ok(out: Out, what: &str) -> Out {
    assert!(out.ok, "{what} failed:\n{}\n{}", out.stdout, out.stderr);
    out
}

async fn dynamodb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config_at(realistic_endpoint()).await)
}

async fn apigateway() -> aws_sdk_apigateway::Client {
    aws_sdk_apigateway::Client::new(&sdk_config_at(realistic_endpoint()).await)
}

/// The seed stack's table: keyed as given, on-demand, with `items`
/// written as the old functions wrote them (no `_rev`).
async fn seed_table(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    keys: &[(&str, KeyType)],
    items: &[(&str, &str)],
) {
    let mut create = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (attribute, kind) in keys {
        create = create
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(*attribute)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(*attribute)
                    .key_type(kind.clone())
                    .build()
                    .unwrap(),
            );
    }
    create.send().await.expect("the seed table");
    for (id, who) in items {
        let mut put = ddb.put_item().table_name(name);
        for (attribute, _) in keys {
            put = put.item(*attribute, Av::S((*id).to_owned()));
        }
        put.item("name", Av::S((*who).to_owned()))
            .item("email", Av::S(format!("{id}@seed.example")))
            .send()
            .await
            .expect("a seed item");
    }
}

async fn table_tags(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Vec<(String, String)> {
    let desc = ddb.describe_table().table_name(name).send().await.unwrap();
    let arn = desc.table().unwrap().table_arn().unwrap().to_owned();
    let mut tags: Vec<(String, String)> = ddb
        .list_tags_of_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    tags.sort();
    tags
}

async fn item_ids(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Vec<String> {
    let mut ids: Vec<String> = ddb
        .scan()
        .table_name(name)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter_map(|i| i.get("id")?.as_s().ok().cloned())
        .collect();
    ids.sort();
    ids
}

fn get_event(id: &str) -> ApiGatewayProxyRequest {
    let mut req = ApiGatewayProxyRequest::default();
    req.http_method = "GET".parse().unwrap();
    req.path = Some(format!("/accounts/{id}"));
    req.resource = Some("/accounts/{id}".to_owned());
    req.path_parameters.insert("id".to_owned(), id.to_owned());
    req.request_context.stage = Some("prod".to_owned());
    req
}

fn body_json(body: &Option<Body>) -> Value {
    match body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap_or(Value::String(t.clone())),
        _ => Value::Null,
    }
}

/// A key value of this length, unique to the test run.
fn key_value(len: usize) -> String {
    let base = unique_name("seedkey").replace('-', "");
    base.chars()
        .chain(std::iter::repeat('x'))
        .take(len)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seed_stack_is_adopted_with_its_items_and_its_key() {
    let ddb = dynamodb().await;
    let api = apigateway().await;
    let table = unique_name("seed-accounts-");
    seed_table(
        &ddb,
        &table,
        &[("id", KeyType::Hash)],
        &[("s1", "Ada"), ("s2", "Grace"), ("s3", "Edsger")],
    )
    .await;
    let value = key_value(40);
    let seed_key = api
        .create_api_key()
        .name(unique_name("seed-client-"))
        .enabled(true)
        .value(&value)
        .send()
        .await
        .expect("the seed key");
    let seed_key_id = seed_key.id().unwrap().to_owned();
    let s = Seeded::new(&table);

    let plan = ok(s.aws(&["plan", "--tenant", &s.id], ""), "plan");
    assert!(
        plan.stdout
            .contains("(adopt: the existing table is taken over, not created)"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains(&table), "{}", plan.stdout);
    ok(s.aws(&["apply", "--tenant", &s.id, "--yes"], ""), "apply");

    // Taken over, not recreated: the items are there, and so are the tags,
    // the file's index and protections.
    assert_eq!(item_ids(&ddb, &table).await, ["s1", "s2", "s3"]);
    let tags = table_tags(&ddb, &table).await;
    for tag in [
        ("apifactory:adopted", "true"),
        ("apifactory:tenant", s.id.as_str()),
        ("managed-by", "apifactory"),
    ] {
        assert!(
            tags.contains(&(tag.0.to_owned(), tag.1.to_owned())),
            "{tags:?}"
        );
    }
    let desc = ddb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let desc = desc.table().unwrap();
    assert_eq!(desc.deletion_protection_enabled(), Some(true));
    let indexes: Vec<&str> = desc
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    assert_eq!(indexes, ["by_email"]);
    // Observe finds the adopted table: nothing left to do.
    let again = ok(s.aws(&["plan", "--tenant", &s.id], ""), "plan again");
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);

    // Key values of the wrong length are refused before anything changes.
    for len in [19, 129] {
        let out = s.aws(&["keys", "import", &s.id, "web"], &key_value(len));
        assert!(!out.ok, "{len} characters: {}", out.stdout);
        assert!(
            out.stderr.contains("20 to 128 characters"),
            "{len}: {}",
            out.stderr
        );
    }
    let plans = usage_plans(&api, &s.id).await;
    assert_eq!(plans.len(), 1);
    let plan_id = plans[0].id().unwrap().to_owned();
    assert!(usage_plan_keys(&api, &plan_id).await.is_empty());

    // The seed's key is taken over (the value read from stdin, with its
    // newline), never printed.
    let imported = ok(
        s.aws(&["keys", "import", &s.id, "web"], &format!("{value}\n")),
        "keys import",
    );
    assert!(
        imported.stdout.contains("taken over"),
        "{}",
        imported.stdout
    );
    assert!(!imported.stdout.contains(&value) && !imported.stderr.contains(&value));
    assert_eq!(
        usage_plan_keys(&api, &plan_id).await,
        std::slice::from_ref(&seed_key_id)
    );
    let key = api
        .get_api_key()
        .api_key(&seed_key_id)
        .include_value(true)
        .send()
        .await
        .unwrap();
    assert_eq!(key.value(), Some(value.as_str()), "the value is kept");
    assert_eq!(
        key.tags().and_then(|t| t.get("apifactory:tenant")),
        Some(&s.id)
    );
    // Again: nothing new, the same key.
    let twice = ok(
        s.aws(&["keys", "import", &s.id, "web", "--json"], &value),
        "keys import again",
    );
    let twice: Value = serde_json::from_str(&twice.stdout).unwrap();
    assert_eq!(twice["id"], json!(seed_key_id));
    assert_eq!(twice["adopted"], json!(true));
    let listed = ok(
        s.aws(&["keys", "list", "--tenant", &s.id, "--json"], ""),
        "keys list",
    );
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["origin"], json!("imported"));

    // The old items through the runtime on the adopted table: read, and
    // updated under their derived revision.
    let tenant = Arc::new(s.tenant());
    let store = DynamoStore::new(ddb.clone(), &table, &tenant.collection);
    let runtime_api = Api::new(Arc::clone(&tenant), store);
    let got = runtime_api.handle(get_event("s1")).await;
    assert_eq!(got.status_code, 200, "{:?}", got.body);
    assert_eq!(body_json(&got.body)["name"], json!("Ada"));
    let etag = got
        .headers
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let mut put = get_event("s1");
    put.http_method = "PUT".parse().unwrap();
    put.body = Some(json!({"name": "Ada L."}).to_string());
    put.headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    put.headers
        .insert("if-match", HeaderValue::from_str(&etag).unwrap());
    let updated = runtime_api.handle(put.clone()).await;
    assert_eq!(updated.status_code, 200, "{:?}", updated.body);
    // The same ETag again is stale now: a real condition.
    let stale = runtime_api.handle(put).await;
    assert_eq!(stale.status_code, 412, "{:?}", stale.body);

    // The local target: the same file, the items copied into its table, the
    // same key imported; `up` answers the old key with the old items.
    local_answers_the_old_key(&s, &value).await;

    // destroy --delete-data keeps the adopted table and says why.
    let destroyed = ok(
        s.aws(
            &["destroy", "--tenant", &s.id, "--delete-data", "--yes"],
            "",
        ),
        "destroy",
    );
    let said = format!("{}{}", destroyed.stdout, destroyed.stderr);
    assert!(said.contains("--delete-adopted-data"), "{said}");
    assert_eq!(item_ids(&ddb, &table).await, ["s1", "s2", "s3"]);
}

async fn local_answers_the_old_key(s: &Seeded, value: &str) {
    let data = s.dir.path().join("data");
    let tenant = s.tenant();
    {
        let state = apifactory::local::LocalState::open(&data).await.unwrap();
        let local = state.database().table(&tenant).await.unwrap();
        for (id, name) in [("s1", "Ada"), ("s2", "Grace")] {
            let mut doc = serde_json::Map::new();
            doc.insert("name".into(), json!(name));
            runtime::Store::create(
                &local,
                &runtime::Item {
                    id: id.into(),
                    rev: "seed".into(),
                    doc,
                },
            )
            .await
            .unwrap();
        }
    }
    let server = Server::start(s.dir.path(), &data, &[]).await;
    let local = ["--target", "local", "--data-dir", data.to_str().unwrap()];
    for len in [19, 129] {
        let out = s.run_on(&local, &["keys", "import", &s.id, "web"], &key_value(len));
        assert!(!out.ok, "{len} characters locally");
    }
    ok(
        s.run_on(
            &local,
            &["keys", "import", &s.id, "web"],
            &format!("{value}\n"),
        ),
        "keys import locally",
    );
    let client = server.client();
    let host = format!("{}.localhost", s.id);
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        let r = client
            .send(
                "GET",
                "/prod/accounts/s2",
                &[("Host", &host), ("x-api-key", value)],
                None,
            )
            .await;
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["name"], json!("Grace"));
    server.kill().await;
    assert!(Path::new(&data).exists());
}

/// One refused table: its name's part, its key schema, what the error
/// says was found.
type Case = (
    &'static str,
    &'static [(&'static str, KeyType)],
    &'static str,
);

/// A table keyed otherwise than the collection (another hash key name, or
/// a range key) cannot be adopted: plan and apply say so, naming the
/// table and what was found, and nothing at all is made or changed.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_keyed_otherwise_is_refused_and_nothing_changes() {
    let ddb = dynamodb().await;
    let api = apigateway().await;
    let iam = aws_sdk_iam::Client::new(&sdk_config_at(realistic_endpoint()).await);
    let cases: [Case; 2] = [
        (
            "account_id",
            &[("account_id", KeyType::Hash)],
            "found hash key \"account_id\" (S)",
        ),
        (
            "range",
            &[("id", KeyType::Hash), ("region", KeyType::Range)],
            "and range key \"region\" (S)",
        ),
    ];
    for (case, keys, found) in cases {
        let table = unique_name(&format!("seed-{case}-"));
        seed_table(&ddb, &table, keys, &[("s1", "Ada")]).await;
        let s = Seeded::new(&table);
        for verb in ["plan", "apply"] {
            let args = [verb, "--tenant", s.id.as_str(), "--yes"];
            let out = s.aws(&args[..if verb == "plan" { 3 } else { 4 }], "");
            assert!(!out.ok, "{case} {verb}: {}", out.stdout);
            assert!(
                out.stderr
                    .contains(&format!("table {table} cannot be adopted"))
                    && out.stderr.contains(found)
                    && out.stderr.contains("collection.table")
                    && out.stderr.contains("nothing was changed"),
                "{case} {verb}: {}",
                out.stderr
            );
        }
        assert!(
            table_tags(&ddb, &table).await.is_empty(),
            "{case}: untagged"
        );
        assert!(usage_plans(&api, &s.id).await.is_empty(), "{case}: no plan");
        let role = iam.get_role().role_name(names::role(&s.id)).send().await;
        assert!(role.is_err(), "{case}: no role either");
        assert_eq!(item_ids_any(&ddb, &table).await, 1, "{case}: items kept");
    }
}

async fn item_ids_any(ddb: &aws_sdk_dynamodb::Client, name: &str) -> usize {
    ddb.scan()
        .table_name(name)
        .send()
        .await
        .unwrap()
        .items()
        .len()
}
