//! A fleet over two accounts and two regions: two moto servers stand for
//! two accounts (a profile each, with its own `endpoint_url`), and each
//! tenant file's `[deploy]` places it. One apply deploys every cell, a
//! second makes no write in any, a moved tenant is made in its new cell
//! and pruned from its old one, and a cell that cannot be reached fails
//! its own tenants only.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use apifactory_tests::aws::rest_apis;
use apifactory_tests::bin_path;
use apifactory_tests::fault_proxy::{FaultConfig, FaultProxy, is_mutating};
use apifactory_tests::fleet::{artifact, text};
use apifactory_tests::{moto_url, repo_root, unique_name};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_apigateway::config::Credentials;
use serde_json::Value;

const ACCOUNT_ONE: &str = "123456789012";
/// `tests/run` starts the second moto with this account id.
const ACCOUNT_TWO: &str = "210987654321";

fn moto_two() -> String {
    std::env::var("APIFACTORY_TEST_MOTO2")
        .expect("APIFACTORY_TEST_MOTO2 is not set: run the tests with tests/run")
        .trim_end_matches('/')
        .to_owned()
}

/// An AWS config file with a profile per (name, endpoint), dummy
/// credentials in each.
fn config_file(dir: &Path, profiles: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = String::new();
    for (name, endpoint) in profiles {
        text += &format!(
            "[profile {name}]\nendpoint_url = {endpoint}\naws_access_key_id = testing\naws_secret_access_key = testing\n\n"
        );
    }
    let path = dir.join("aws-config");
    std::fs::write(&path, text).unwrap();
    path
}

/// A small tenant file placed in a region of a profile's account.
fn tenant(dir: &Path, id: &str, profile: &str, region: &str) {
    std::fs::write(
        dir.join(format!("{id}.toml")),
        format!(
            "[tenant]\ndisplay_name = \"{id}\"\n[collection]\nname = \"items\"\n[collection.fields]\nname = {{ type = \"string\" }}\n[usage_plan]\nrate = 5\nburst = 10\n[[clients]]\nname = \"web\"\n[deploy]\nprofile = \"{profile}\"\nregion = \"{region}\"\n"
        ),
    )
    .unwrap();
}

async fn run(tenants: &Path, config: &Path, args: &[&str]) -> Output {
    run_with(tenants, config, args, &[]).await
}

/// [`run`] with more environment variables.
async fn run_with(tenants: &Path, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = tokio::process::Command::new(bin_path("apifactory"));
    c.envs(env.iter().copied());
    c.args(args).arg("--tenants").arg(tenants);
    if args[0] != "validate" {
        c.args(["--target", "aws", "--artifact"]).arg(artifact());
    }
    c
        // Only the profiles say where and who: the run's moto settings
        // are not inherited.
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", config)
        .env("AWS_SHARED_CREDENTIALS_FILE", config.with_extension("none"))
        .env("APIFACTORY_PACE", "off")
        .current_dir(repo_root())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(120), c.output())
        .await
        .expect("apifactory finishes within 120 s")
        .expect("apifactory runs")
}

/// A counting proxy in front of a moto: the CLI goes through it (it also
/// speaks CloudWatch's CBOR protocol to moto), the test's checks read moto.
async fn proxy(moto: &str) -> FaultProxy {
    FaultProxy::start(moto, FaultConfig::with_rate(0.0)).await
}

/// The mutating calls a proxy saw, by `service:Operation`.
fn writes(proxy: &FaultProxy) -> BTreeMap<String, u64> {
    proxy
        .stats()
        .operations()
        .into_iter()
        .filter(|(key, _)| is_mutating(key.split_once(':').map_or(key.as_str(), |(_, op)| op)))
        .map(|(k, c)| (k, c.calls))
        .collect()
}

async fn apigateway(endpoint: &str, region: &str) -> aws_sdk_apigateway::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await;
    aws_sdk_apigateway::Client::new(&config)
}

/// Where each tenant's REST API is: (endpoint, region) pairs that have one.
async fn found_in(tenant: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for endpoint in [moto_url(), moto_two()] {
        for region in ["us-east-1", "eu-west-1"] {
            if !rest_apis(&apigateway(&endpoint, region).await, tenant)
                .await
                .is_empty()
            {
                found.push((endpoint.clone(), region.to_owned()));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_over_four_cells_applies_in_one_run_and_a_second_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants");
    std::fs::create_dir(&tenants).unwrap();
    let (one, two) = (proxy(&moto_url()).await, proxy(&moto_two()).await);
    let config = config_file(dir.path(), &[("one", one.url()), ("two", two.url())]);
    let placed = [
        (unique_name("c-"), "one", "us-east-1", moto_url()),
        (unique_name("c-"), "one", "eu-west-1", moto_url()),
        (unique_name("c-"), "two", "us-east-1", moto_two()),
        (unique_name("c-"), "two", "eu-west-1", moto_two()),
    ];
    for (id, profile, region, _) in &placed {
        tenant(&tenants, id, profile, region);
    }

    let out = run(&tenants, &config, &["validate"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = run(&tenants, &config, &["apply", "--yes"]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for cell in [
        format!("=== cell {ACCOUNT_ONE}/us-east-1"),
        format!("=== cell {ACCOUNT_ONE}/eu-west-1"),
        format!("=== cell {ACCOUNT_TWO}/us-east-1"),
        format!("=== cell {ACCOUNT_TWO}/eu-west-1"),
    ] {
        assert_eq!(stdout.matches(&cell).count(), 1, "{cell}: {stdout}");
    }
    for (id, _, region, endpoint) in &placed {
        assert_eq!(
            found_in(id).await,
            [(endpoint.clone(), region.to_string())],
            "{id} is in its cell only"
        );
    }

    // Nothing changed: no cell writes, by its own count and by each
    // account's proxy.
    let before = (writes(&one), writes(&two));
    let out = run(&tenants, &config, &["apply", "--yes"]).await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!((writes(&one), writes(&two)), before, "{stderr}");
    let made: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("apply made "))
        .collect();
    assert_eq!(made.len(), 4, "{stderr}");
    assert!(
        made.iter()
            .all(|l| l.starts_with("apply made 0 mutating call(s)")),
        "{stderr}"
    );

    // The plan as JSON: a member per cell, each with its tenant's plan.
    let out = run(&tenants, &config, &["plan", "--json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cells = doc["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4, "{doc:#}");
    for (id, _, region, _) in &placed {
        let cell = cells
            .iter()
            .find(|c| c["tenants"] == serde_json::json!([id]))
            .unwrap_or_else(|| panic!("no cell holds {id}: {doc:#}"));
        assert_eq!(cell["region"], region.to_string());
        assert!(cell["error"].is_null(), "{cell:#}");
        assert!(cell["output"].is_object(), "{cell:#}");
    }

    // A tenant moved to another account and region: created in its new
    // cell, shown as orphaned in its old one (no tenant is left there),
    // deleted from it only with --prune.
    let (moved, _, _, _) = &placed[1];
    tenant(&tenants, moved, "two", "us-east-1");
    let out = run(&tenants, &config, &["apply", "--yes", "--tenant", moved]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let old = stdout
        .split("=== cell ")
        .find(|c| c.starts_with(&format!("{ACCOUNT_ONE}/eu-west-1")))
        .unwrap_or_else(|| panic!("the old cell is visited: {stdout}"));
    assert!(old.contains("orphans"), "{old}");
    assert_eq!(
        found_in(moved).await,
        [
            (moto_url(), "eu-west-1".to_owned()),
            (moto_two(), "us-east-1".to_owned())
        ]
    );
    let out = run(
        &tenants,
        &config,
        &["apply", "--yes", "--prune", "--tenant", moved],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        found_in(moved).await,
        [(moto_two(), "us-east-1".to_owned())]
    );

    // The commands about one tenant find it in its cell from its file.
    let (far, _, region, endpoint) = &placed[3];
    let out = run(
        &tenants,
        &config,
        &["keys", "list", "--tenant", far, "--json"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let keys: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(keys[0]["client"], "web", "{keys:#}");
    let out = run(&tenants, &config, &["destroy", "--tenant", far, "--yes"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        rest_apis(&apigateway(endpoint, region).await, far)
            .await
            .is_empty()
    );
    assert_eq!(found_in(&placed[0].0).await.len(), 1, "the others stay");
}

/// A loopback endpoint that answers every request 400 with no error code
/// (an error no SDK retries): an unreachable account, found at once.
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 8192];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cell_that_cannot_be_reached_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants");
    std::fs::create_dir(&tenants).unwrap();
    let one = proxy(&moto_url()).await;
    let config = config_file(
        dir.path(),
        &[("one", one.url()), ("dead", &dead_endpoint())],
    );
    let alive = unique_name("c-");
    let lost = unique_name("c-");
    tenant(&tenants, &alive, "one", "eu-west-1");
    tenant(&tenants, &lost, "dead", "us-east-1");

    let out = run(&tenants, &config, &["apply", "--yes"]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("its tenant(s) {lost} not done")),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("=== cell {ACCOUNT_ONE}/eu-west-1")),
        "{stdout}"
    );
    assert_eq!(
        found_in(&alive).await,
        [(moto_url(), "eu-west-1".to_owned())]
    );

    // The dead account's cells hold no tenant of this run: they are
    // visited only for tenants moved out of them, and that they cannot be
    // reached is a warning.
    let out = run(&tenants, &config, &["apply", "--yes", "--tenant", &alive]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("warning: cell profile dead, region us-east-1 cannot be reached"),
        "{stderr}"
    );
    assert!(stderr.contains("were not looked for there"), "{stderr}");
    assert!(!stderr.lines().any(|l| l.starts_with("error:")), "{stderr}");

    // --endpoint-url beats the profile's endpoint_url: the dead profile's
    // tenant is planned in the account the command line's endpoint is
    // (the second moto's), with the profile's credentials.
    let two = proxy(&moto_two()).await;
    let out = run(
        &tenants,
        &config,
        &["plan", "--tenant", &lost, "--endpoint-url", two.url()],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Both profiles' tenants are then in one account: one cell each region.
    let cell = stdout
        .lines()
        .find(|l| l.starts_with(&format!("=== cell {ACCOUNT_TWO}/us-east-1 (profile ")))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(cell.contains("dead"), "{cell}");
    assert!(cell.ends_with(": 1 tenant(s)"), "{cell}");

    // validate names a profile no config file declares.
    tenant(&tenants, &lost, "nobody", "us-east-1");
    let out = run(&tenants, &config, &["validate"]).await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("deploy.profile"), "{stderr}");
    assert!(stderr.contains("\"nobody\""), "{stderr}");
}

/// In `dir`: a tenants directory, and an AWS config file whose profile `q`
/// acts in an account of the test's own through a counting proxy; the
/// proxy, and the account's access key and secret.
async fn own_cell(
    dir: &Path,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    FaultProxy,
    (String, String),
) {
    let tenants = dir.join("tenants");
    std::fs::create_dir(&tenants).unwrap();
    let one = proxy(&moto_url()).await;
    let (_, key, secret) = apifactory_tests::aws::own_account(6, "cells-test").await;
    let config = dir.join("aws-config");
    std::fs::write(
        &config,
        format!(
            "[profile q]\nendpoint_url = {}\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n",
            one.url()
        ),
    )
    .unwrap();
    (tenants, config, one, (key, secret))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn iams_role_quota_is_counted_over_every_region_of_an_account() {
    let dir = tempfile::tempdir().unwrap();
    let (tenants, config, one, _) = own_cell(dir.path()).await;
    let (east, west) = (unique_name("c-"), unique_name("c-"));
    tenant(&tenants, &east, "q", "us-east-1");
    tenant(&tenants, &west, "q", "eu-west-1");
    // The account holds no role: one new role fits under a quota of one,
    // two (a role per tenant, one in each region) do not. The account's
    // own RolesQuota makes the limit hard, as AWS enforces it.
    let quota = [("APIFACTORY_TEST_QUOTAS", "roles=1")];

    let out = run_with(&tenants, &config, &["apply", "--yes"], &quota).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("IAM roles per account (all regions): 0 existing + 2 to create = 2"),
        "{stderr}"
    );
    for id in [&east, &west] {
        assert!(
            stderr.contains(&format!("its tenant(s) {id} not done")),
            "{stderr}"
        );
    }
    assert_eq!(
        writes(&one),
        BTreeMap::new(),
        "refused before any write: {stderr}"
    );

    // Each alone fits.
    let out = run_with(
        &tenants,
        &config,
        &["apply", "--yes", "--tenant", &east],
        &quota,
    )
    .await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", text(&out.stdout));
    assert!(!writes(&one).is_empty());
}

/// The console's address and an admin cookie, from a running
/// `apifactory console` whose stdout is `lines`.
async fn console_session(
    child: &mut tokio::process::Child,
) -> (apifactory_tests::server::Client, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("apifactory console: ") {
                return url.trim().to_owned();
            }
        }
        panic!("apifactory console ended before printing its address");
    })
    .await
    .expect("the console starts within 60 s");
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    let c = apifactory_tests::server::Client {
        addr: addr.to_owned(),
    };
    let signed = c.send("GET", path, &[], None).await;
    assert_eq!(signed.status, 303);
    let cookie = signed
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (c, cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_logs_and_the_console_find_each_tenant_in_its_cell() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants");
    std::fs::create_dir(&tenants).unwrap();
    let (one, two) = (proxy(&moto_url()).await, proxy(&moto_two()).await);
    let config = config_file(dir.path(), &[("one", one.url()), ("two", two.url())]);
    let (near, far) = (unique_name("c-"), unique_name("c-"));
    tenant(&tenants, &near, "one", "us-east-1");
    tenant(&tenants, &far, "two", "eu-west-1");
    let out = run(&tenants, &config, &["apply", "--yes"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The far tenant is in the other account's other region only: a
    // command looking where the command line points would not find it.
    assert_eq!(found_in(&far).await, [(moto_two(), "eu-west-1".to_owned())]);
    let mut key_of = BTreeMap::new();
    for id in [&near, &far] {
        let out = run(
            &tenants,
            &config,
            &["keys", "list", "--tenant", id, "--json"],
        )
        .await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        let keys: Value = serde_json::from_slice(&out.stdout).unwrap();
        key_of.insert(id.clone(), keys[0]["id"].as_str().unwrap().to_owned());
    }

    let out = run(&tenants, &config, &["usage", "--tenant", &far, "--json"]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains(&key_of[&far]), "{stdout}");

    // A line in the far tenant's access log, in its cell.
    let logs = aws_sdk_cloudwatchlogs::Client::new(
        &aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(moto_two())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .load()
            .await,
    );
    let group = runtime::names::access_log_group(&far);
    logs.create_log_stream()
        .log_group_name(&group)
        .log_stream_name("cells-test")
        .send()
        .await
        .unwrap();
    let marker = format!("a request of {far}");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    logs.put_log_events()
        .log_group_name(&group)
        .log_stream_name("cells-test")
        .log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now_ms)
                .message(&marker)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let out = run(&tenants, &config, &["logs", &far]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains(&marker), "{stdout}");

    // The console's fleet page: each tenant with its key, from its cell.
    let mut console = tokio::process::Command::new(bin_path("apifactory"));
    console
        .args(["console", "--tenants"])
        .arg(&tenants)
        .args(["--target", "aws", "--listen", "127.0.0.1:0"])
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", config.with_extension("none"))
        .env("APIFACTORY_PACE", "off")
        .current_dir(repo_root())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = console.spawn().unwrap();
    let (c, cookie) = console_session(&mut child).await;
    let fleet = c
        .send("GET", "/_console/", &[("Cookie", &cookie)], None)
        .await;
    assert_eq!(fleet.status, 200, "{}", fleet.body);
    for (id, key) in &key_of {
        assert!(
            fleet.body.contains(&format!("<tr data-tenant=\"{id}\">")),
            "{id}: {}",
            fleet.body
        );
        assert!(
            fleet.body.contains(&format!("data-key-id=\"{key}\"")),
            "{id}'s key {key}: {}",
            fleet.body
        );
    }
    let page = c
        .send(
            "GET",
            &format!("/_console/tenants/{far}/keys"),
            &[("Cookie", &cookie)],
            None,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&key_of[&far]), "{}", page.body);
    let _ = child.kill().await;
}

/// Every call a proxy saw, by `service:Operation`.
fn calls(proxy: &FaultProxy) -> BTreeMap<String, u64> {
    proxy
        .stats()
        .operations()
        .into_iter()
        .map(|(k, c)| (k, c.calls))
        .collect()
}

/// The calls made since `before`, by operation.
fn since(before: &BTreeMap<String, u64>, now: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    now.into_iter()
        .map(|(k, n)| (k.clone(), n - before.get(&k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// IAM is global: each cell of an account lists the roles of the account's
/// other cells. Those are never read, orphaned or pruned there, and a
/// tenant moved to another region of its account keeps its one role, whose
/// policy names its table in any region of the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_regions_of_one_account_leave_each_others_roles_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (tenants, config, one, (key, secret)) = own_cell(dir.path()).await;
    let (east, west, stay) = (unique_name("c-"), unique_name("c-"), unique_name("c-"));
    tenant(&tenants, &east, "q", "us-east-1");
    tenant(&tenants, &west, "q", "eu-west-1");
    // Keeps eu-west-1 named by a file after the move: a run visits the
    // cells the files name (README, "Placement and cells").
    tenant(&tenants, &stay, "q", "eu-west-1");
    let out = run(&tenants, &config, &["apply", "--yes"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let before = calls(&one);
    let out = run(&tenants, &config, &["apply", "--yes", "--prune"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let made = since(&before, calls(&one));
    assert!(
        made.keys()
            .all(|op| !is_mutating(op.split_once(':').unwrap().1))
            && !made.contains_key("iam:GetRolePolicy"),
        "a pruning apply with no change neither writes nor reads the other cell's role: {made:?}"
    );

    // The west tenant moves to the east region of the same account.
    tenant(&tenants, &west, "q", "us-east-1");
    let before = calls(&one);
    let out = run(&tenants, &config, &["apply", "--yes", "--prune"]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let made = since(&before, calls(&one));
    assert_eq!(
        made.get("apigateway:DeleteRestApi"),
        Some(&1),
        "its old stack is pruned from the old region: {made:?}"
    );
    assert!(
        !made.contains_key("iam:DeleteRole") && !made.contains_key("iam:CreateRole"),
        "it keeps its one role: {made:?}"
    );
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto_url())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(key, secret, None, None, "tests"))
        .load()
        .await;
    let iam = aws_sdk_iam::Client::new(&config);
    let policy = iam
        .get_role_policy()
        .role_name(format!("apifactory-{west}-functions"))
        .policy_name("apifactory-items-and-logs")
        .send()
        .await
        .expect("the moved tenant's role is still there");
    let document = policy.policy_document();
    assert!(
        document.contains("dynamodb:*:") || document.contains("dynamodb%3A%2A%3A"),
        "{document}"
    );
}
