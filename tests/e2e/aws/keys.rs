//! Per-client keys on the AWS target, against the moto server of this run,
//! through the real CLI (`apifactory keys ... --target aws --endpoint-url`):
//! list, create, rotate with a short grace and expiry by `keys expire` and
//! by `apply`, disable, enable, revoke, a reordered and a shortened client
//! list. The tenant is a copy of acme under a unique id, so tests running
//! in parallel on the same moto never meet.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use apifactory_tests::{
    Recording, bin_path, realistic_endpoint, repo_root, sdk_config, unique_name,
};
use runtime::names;
use serde_json::Value;

use apifactory_tests::aws::{mutating, small_artifact, usage_plan_keys, usage_plans};

struct Tenant {
    dir: tempfile::TempDir,
    id: String,
    /// Every line the CLI printed, but for the outputs that issue values.
    outputs: String,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Tenant {
    /// acme under a unique id, without its custom domain (not what these
    /// tests are about).
    fn new() -> Tenant {
        let dir = tempfile::tempdir().unwrap();
        let id = unique_name("keys");
        let text = std::fs::read_to_string(repo_root().join("tenants/acme.toml")).unwrap();
        let start = text.find("[domain]").unwrap();
        let end = text.find("[logs]").unwrap();
        let text = format!("{}{}", &text[..start], &text[end..]);
        std::fs::write(dir.path().join(format!("{id}.toml")), text).unwrap();
        Tenant {
            dir,
            id,
            outputs: String::new(),
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join(format!("{}.toml", self.id))
    }

    fn key_name(&self, client: &str) -> String {
        names::api_key(&self.id, client)
    }

    /// `apifactory <args> --target aws --endpoint-url <moto>`; plan and
    /// apply get a small artifact (keys are the point here, not the code)
    /// and this tenant only.
    fn run(&self, args: &[&str]) -> Out {
        let mut c = Command::new(bin_path("apifactory"));
        c.arg("--tenants")
            .arg(self.dir.path())
            .args(args)
            .args(["--target", "aws", "--endpoint-url", realistic_endpoint()])
            .env_remove("AWS_ENDPOINT_URL")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("APIFACTORY_PACE", "off")
            .current_dir(repo_root());
        if matches!(args.first(), Some(&"plan" | &"apply")) {
            c.arg("--artifact")
                .arg(small_artifact())
                .args(["--tenant", &self.id]);
        }
        let out = c.output().unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs, expects success, and keeps the output for the final grep.
    fn ok(&mut self, args: &[&str]) -> Out {
        let out = self.issuing(args);
        self.outputs += &out.stdout;
        self.outputs += &out.stderr;
        out
    }

    /// Runs, expects success; the output may hold a value (create, rotate,
    /// the first apply), so it is not kept.
    fn issuing(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        assert!(
            out.ok,
            "apifactory {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out
    }

    fn list(&mut self) -> Vec<Value> {
        let id = self.id.clone();
        let out = self.ok(&["keys", "list", "--tenant", &id, "--json"]);
        serde_json::from_str::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    fn plan_actions(&mut self) -> Value {
        let out = self.ok(&["plan", "--json"]);
        serde_json::from_str::<Value>(&out.stdout).unwrap()["actions"].clone()
    }
}

fn by_id<'a>(keys: &'a [Value], id: &str) -> &'a Value {
    keys.iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("no key {id} in {keys:#?}"))
}

fn by_client_origin<'a>(keys: &'a [Value], client: &str, origin: &str) -> Vec<&'a Value> {
    keys.iter()
        .filter(|k| k["client"] == client && k["origin"] == origin)
        .collect()
}

/// The key as API Gateway has it: `None` when it is gone.
async fn get_key(
    api: &aws_sdk_apigateway::Client,
    id: &str,
) -> Option<aws_sdk_apigateway::operation::get_api_key::GetApiKeyOutput> {
    match api.get_api_key().api_key(id).send().await {
        Ok(k) => Some(k),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_not_found_exception()) =>
        {
            None
        }
        Err(e) => panic!("GetApiKey {id}: {e:?}"),
    }
}

async fn enabled(api: &aws_sdk_apigateway::Client, id: &str) -> bool {
    get_key(api, id)
        .await
        .unwrap_or_else(|| panic!("key {id} is gone"))
        .enabled()
}

async fn plan_id(api: &aws_sdk_apigateway::Client, tenant: &str) -> String {
    let plans: Vec<String> = usage_plans(api, tenant)
        .await
        .iter()
        .filter_map(|p| p.id().map(str::to_owned))
        .collect();
    assert_eq!(plans.len(), 1, "{plans:?}");
    plans[0].clone()
}

/// Waits out a grace period that began before now, and the second more
/// that expiry (in whole seconds) needs.
async fn wait_out(grace: Duration) {
    tokio::time::sleep(grace + Duration::from_millis(1100)).await;
}

fn values_in(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.split_once("x-api-key: "))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_commands_on_aws() {
    let mut t = Tenant::new();
    let id = t.id.clone();
    let api = aws_sdk_apigateway::Client::new(&sdk_config().await);

    // The tenant, with its two clients' keys (their values shown once).
    let first = t.issuing(&["apply"]);
    let mut issued = values_in(&first.stdout);
    assert_eq!(issued.len(), 2, "{}", first.stdout);
    let plan = plan_id(&api, &id).await;

    // List: both keys, enabled, from the file, no value anywhere.
    let keys = t.list();
    assert_eq!(keys.len(), 2, "{keys:#?}");
    for k in &keys {
        assert_eq!(k["tenant"], id.as_str());
        assert_eq!(k["enabled"], true);
        assert_eq!(k["origin"], "file");
        assert_eq!(k["expires"], Value::Null);
        // API Gateway records no last use.
        assert_eq!(k["last_used"], Value::Null);
        assert!(k["created"].as_str().unwrap().ends_with('Z'), "{k}");
        assert!(k.get("value").is_none(), "{k}");
        assert_eq!(k["name"], t.key_name(k["client"].as_str().unwrap()));
        assert!(enabled(&api, k["id"].as_str().unwrap()).await);
    }
    let web = by_client_origin(&keys, "acme-web", "file")[0].clone();
    let billing = by_client_origin(&keys, "acme-billing", "file")[0].clone();
    let table = t.ok(&["keys", "list", "--tenant", &id]).stdout;
    assert!(
        table.contains("last used") && table.contains("2 key(s)"),
        "{table}"
    );
    for k in [&web, &billing] {
        let line = table
            .lines()
            .find(|l| l.contains(k["id"].as_str().unwrap()))
            .unwrap();
        assert!(
            line.contains(" yes ") && line.trim_end().ends_with('-'),
            "{line}"
        );
    }
    // Without --tenant: every tenant's keys, ours among them.
    let everyone = t.ok(&["keys", "list", "--json"]).stdout;
    assert!(everyone.contains(web["id"].as_str().unwrap()));

    // Create: an ad-hoc key on the tenant's usage plan, its value printed
    // once.
    let created: Value = serde_json::from_str(
        &t.issuing(&["keys", "create", &id, "partner", "--json"])
            .stdout,
    )
    .unwrap();
    for field in ["tenant", "client", "id", "value"] {
        assert!(created[field].is_string(), "{created}");
    }
    assert_eq!(created["tenant"], id.as_str());
    assert_eq!(created["client"], "partner");
    let partner = created["id"].as_str().unwrap().to_owned();
    let value = created["value"].as_str().unwrap().to_owned();
    assert!(value.len() >= 40, "{value}");
    issued.push(value);
    assert!(usage_plan_keys(&api, &plan).await.contains(&partner));
    let key = get_key(&api, &partner).await.unwrap();
    assert!(key.enabled());
    assert!(
        key.name()
            .unwrap()
            .starts_with(&format!("{}-", t.key_name("partner"))),
        "{:?}",
        key.name()
    );
    let listed = t.list();
    assert_eq!(by_id(&listed, &partner)["origin"], "cli");
    // Keys made by `keys create` are not the tenant file's.
    assert_eq!(t.plan_actions(), serde_json::json!([]));

    // Disable, enable, revoke; a key of another tenant is refused.
    t.ok(&["keys", "disable", &id, &partner]);
    assert!(!enabled(&api, &partner).await);
    assert_eq!(by_id(&t.list(), &partner)["enabled"], false);
    t.ok(&["keys", "enable", &id, &partner]);
    assert!(enabled(&api, &partner).await);
    let other = t.run(&["keys", "revoke", "some-other-tenant", &partner]);
    assert!(
        !other.ok
            && other.stderr.contains(&format!(
                "tenant some-other-tenant has no key with id {partner}"
            )),
        "{}",
        other.stderr
    );
    assert!(get_key(&api, &partner).await.is_some());
    t.ok(&["keys", "revoke", &id, &partner]);
    assert!(get_key(&api, &partner).await.is_none());
    assert_eq!(t.list().len(), 2);
    // moto keeps a deleted key among the usage plan's keys (AWS drops it);
    // get_usage_plan_keys is not checked here for that reason.

    // Rotate with a short grace: the new key takes the client's name and
    // plan, the old one is renamed and works (enabled) until the grace ends.
    let rotated: Value = serde_json::from_str(
        &t.issuing(&["keys", "rotate", &id, "acme-web", "--grace", "6s", "--json"])
            .stdout,
    )
    .unwrap();
    let rotated_at = std::time::Instant::now();
    let old = web["id"].as_str().unwrap().to_owned();
    assert_eq!(rotated["old_id"], old.as_str());
    let new = rotated["id"].as_str().unwrap().to_owned();
    issued.push(rotated["value"].as_str().unwrap().to_owned());
    assert!(rotated["value"].as_str().unwrap().len() >= 40);
    assert!(enabled(&api, &new).await && enabled(&api, &old).await);
    let new_key = get_key(&api, &new).await.unwrap();
    assert_eq!(new_key.name(), Some(t.key_name("acme-web").as_str()));
    let old_key = get_key(&api, &old).await.unwrap();
    assert_eq!(
        old_key.name().unwrap(),
        format!("{}-rotated-{old}", t.key_name("acme-web"))
    );
    assert!(usage_plan_keys(&api, &plan).await.contains(&new));
    let listed = t.list();
    assert_eq!(by_id(&listed, &new)["origin"], "file");
    assert_eq!(by_id(&listed, &old)["origin"], "rotated");
    assert_eq!(by_id(&listed, &old)["expires"], rotated["old_expires"]);
    // The client keeps its identity: the plan has nothing to do, but
    // disable the old key once its grace has ended.
    let actions = t.plan_actions();
    if rotated_at.elapsed() < Duration::from_secs(6) {
        assert_eq!(actions, serde_json::json!([]));
    } else {
        let names: Vec<&str> = actions
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [format!("{}-rotated-{old}", t.key_name("acme-web"))]);
    }

    // A second rotation with a long grace, which nothing below expires.
    let long: Value = serde_json::from_str(
        &t.issuing(&[
            "keys",
            "rotate",
            &id,
            "acme-billing",
            "--grace",
            "1h",
            "--json",
        ])
        .stdout,
    )
    .unwrap();
    issued.push(long["value"].as_str().unwrap().to_owned());
    let billing_old = billing["id"].as_str().unwrap().to_owned();
    let billing_new = long["id"].as_str().unwrap().to_owned();
    assert_eq!(long["old_id"], billing_old.as_str());

    // After the grace, `keys expire` disables the old acme-web key only.
    wait_out(Duration::from_secs(6).saturating_sub(rotated_at.elapsed())).await;
    let expired = t.ok(&["keys", "expire"]).stdout;
    assert!(expired.contains(&old), "{expired}");
    assert!(!expired.contains(&billing_old), "{expired}");
    assert!(!enabled(&api, &old).await);
    assert!(enabled(&api, &new).await);
    assert!(enabled(&api, &billing_old).await && enabled(&api, &billing_new).await);
    assert_eq!(by_id(&t.list(), &old)["enabled"], false);

    // Rotating again, the next apply disables the key it replaced once the
    // grace has ended, and makes no other change.
    let again: Value = serde_json::from_str(
        &t.issuing(&["keys", "rotate", &id, "acme-web", "--grace", "1s", "--json"])
            .stdout,
    )
    .unwrap();
    issued.push(again["value"].as_str().unwrap().to_owned());
    assert_eq!(again["old_id"], new.as_str());
    let newest = again["id"].as_str().unwrap().to_owned();
    wait_out(Duration::from_secs(1)).await;
    // The plan shows the expiry before apply carries it out.
    let planned = t.ok(&["plan"]).stdout;
    let change = format!("-rotated-{new}  (enabled: true -> false)");
    assert!(planned.contains(&change), "{planned}");
    assert!(
        planned.contains("Plan: 0 to create, 1 to change, 0 to delete."),
        "{planned}"
    );
    assert!(enabled(&api, &new).await, "plan changes nothing");
    let applied = t.ok(&["apply"]);
    assert!(applied.stdout.contains(&change), "{}", applied.stdout);
    assert!(!enabled(&api, &new).await);
    assert!(enabled(&api, &newest).await);
    assert!(enabled(&api, &billing_old).await);

    // A no-op apply with nothing expired: no mutating request on this
    // tenant's keys or plan (nor anything else of it).
    let mut ours: Vec<String> = t
        .list()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect();
    ours.push(plan.clone());
    ours.push(id.clone());
    let recording = Recording::start().await;
    let noop = t.ok(&["apply"]);
    let requests = recording.requests().await;
    recording.stop().await;
    assert!(
        noop.stderr.contains("apply made 0 mutating call(s)"),
        "{}",
        noop.stderr
    );
    assert!(!noop.stdout.contains("disabled"), "{}", noop.stdout);
    let mutated: Vec<String> = requests
        .iter()
        .filter(|r| mutating(r))
        .filter(|r| ours.iter().any(|x| r.url.contains(x) || r.body.contains(x)))
        .map(|r| format!("{} {}", r.method, r.url))
        .collect();
    assert!(mutated.is_empty(), "{mutated:#?}");

    // Reordering the clients in the file changes no key.
    let before = t.list();
    let text = std::fs::read_to_string(t.file()).unwrap();
    let (head, clients) = text.split_at(text.find("[[clients]]").unwrap());
    let blocks: Vec<&str> = clients
        .split("[[clients]]")
        .filter(|b| !b.trim().is_empty())
        .collect();
    assert_eq!(blocks.len(), 2);
    std::fs::write(
        t.file(),
        format!(
            "{head}[[clients]]{}\n[[clients]]{}",
            blocks[1].trim_end(),
            blocks[0]
        ),
    )
    .unwrap();
    let reordered = t.ok(&["plan"]).stdout;
    assert!(!reordered.contains("api_key"), "{reordered}");
    assert_eq!(t.plan_actions(), serde_json::json!([]));
    t.ok(&["apply"]);
    assert_eq!(t.list(), before);

    // Removing a client: the plan shows its key disabled, apply disables it.
    let text = std::fs::read_to_string(t.file()).unwrap();
    let start = text.find("[[clients]]\nname = \"acme-billing\"").unwrap();
    let end = text[start + 1..]
        .find("[[clients]]")
        .map_or(text.len(), |i| start + 1 + i);
    std::fs::write(t.file(), format!("{}{}", &text[..start], &text[end..])).unwrap();
    let plan_text = t.ok(&["plan"]).stdout;
    assert!(
        plan_text.contains(&format!(
            "~ api_key    {}  (enabled: true -> false)",
            t.key_name("acme-billing")
        )),
        "{plan_text}"
    );
    // The file changed, so the tenant's stamp moves with it.
    assert!(plan_text.contains("~ stamp "), "{plan_text}");
    assert!(
        plan_text.contains("Plan: 0 to create, 2 to change, 0 to delete."),
        "{plan_text}"
    );
    t.ok(&["apply"]);
    assert!(!enabled(&api, &billing_new).await);
    assert!(enabled(&api, &newest).await);
    assert_eq!(t.plan_actions(), serde_json::json!([]));

    // No issued value in any output but the ones that issued it.
    assert!(issued.len() >= 6);
    for value in &issued {
        assert!(
            !t.outputs.contains(value.as_str()),
            "a key value in a listing, plan or apply output"
        );
    }
}
