//! `apifactory up` end to end: the real binary serving the five tenants over
//! HTTP with API Gateway's behaviour.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apifactory_tests::server::{Keys, Server, copy_tenants};
use serde_json::{Value, json};

/// Per tenant: id, stage, collection, key field, a valid new item.
fn samples() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Value,
)> {
    vec![
        (
            "acme",
            "prod",
            "accounts",
            "id",
            json!({"name": "Ada", "email": "ada@example.com"}),
        ),
        (
            "bookshop",
            "v1",
            "books",
            "isbn",
            json!({"isbn": "978-0-13-110362-7", "title": "K&R", "authors": ["Kernighan", "Ritchie"], "price": 45.5}),
        ),
        (
            "clinic",
            "prod",
            "appointments",
            "id",
            json!({"patient_ref": "P-000123", "starts_at": "2026-12-01T09:00:00Z"}),
        ),
        (
            "events",
            "prod",
            "events",
            "id",
            json!({"title": "Gig", "venue": "Hall", "starts": "2026-12-24T20:00:00Z", "capacity": 100}),
        ),
        (
            "fleet",
            "live",
            "vehicles",
            "vin",
            json!({"vin": "VIN1", "plate": "AB 123", "make": "Volvo"}),
        ),
    ]
}

fn key<'a>(keys: &'a Keys, tenant: &str) -> &'a str {
    keys.iter()
        .find(|((t, _), _)| t == tenant)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no key printed for {tenant}: {keys:?}"))
}

async fn start(tmp: &tempfile::TempDir, extra: &[&str]) -> Server {
    let tenants = copy_tenants(tmp.path());
    Server::start(&tenants, &tmp.path().join("data"), extra).await
}

#[tokio::test(flavor = "multi_thread")]
async fn up_serves_crud_for_all_five_tenants() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp, &[]).await;
    let keys = server.keys();
    assert_eq!(
        keys.len(),
        6,
        "one key per declared client, printed once: {keys:?}"
    );
    let c = server.client();
    for (tenant, stage, coll, key_field, item) in samples() {
        let host = format!("{tenant}.localhost");
        let k = key(&keys, tenant);
        let h = [("Host", host.as_str()), ("x-api-key", k)];
        let created = c
            .send(
                "POST",
                &format!("/{stage}/{coll}"),
                &h,
                Some(&item.to_string()),
            )
            .await;
        assert_eq!(created.status, 201, "{tenant}: {}", created.body);
        let id = created.json()[key_field].as_str().unwrap().to_owned();
        assert_eq!(
            created.header("location"),
            Some(format!("/{stage}/{coll}/{id}").as_str()),
            "{tenant}"
        );
        let etag = created.header("etag").unwrap().to_owned();

        let got = c
            .send("GET", &format!("/{stage}/{coll}/{id}"), &h, None)
            .await;
        assert_eq!(got.status, 200, "{tenant}");
        assert_eq!(got.json(), created.json());

        let page = c
            .send("GET", &format!("/{stage}/{coll}?limit=5"), &h, None)
            .await;
        assert_eq!(page.status, 200, "{tenant}: {}", page.body);
        assert_eq!(page.json()["items"].as_array().unwrap().len(), 1);

        let mut changed = item.clone();
        changed.as_object_mut().unwrap().remove(key_field);
        let ifm = [
            ("Host", host.as_str()),
            ("x-api-key", k),
            ("If-Match", etag.as_str()),
        ];
        let put = c
            .send(
                "PUT",
                &format!("/{stage}/{coll}/{id}"),
                &ifm,
                Some(&changed.to_string()),
            )
            .await;
        assert_eq!(put.status, 200, "{tenant}: {}", put.body);
        let stale = c
            .send(
                "PUT",
                &format!("/{stage}/{coll}/{id}"),
                &ifm,
                Some(&changed.to_string()),
            )
            .await;
        assert_eq!(stale.status, 412, "{tenant}");

        let bad = c
            .send(
                "POST",
                &format!("/{stage}/{coll}"),
                &h,
                Some(r#"{"not_a_field": 1}"#),
            )
            .await;
        assert_eq!(bad.status, 400, "{tenant}");
        assert_eq!(bad.header("content-type"), Some("application/problem+json"));

        let del = c
            .send("DELETE", &format!("/{stage}/{coll}/{id}"), &h, None)
            .await;
        if tenant == "clinic" {
            // Clinic deploys no delete function: API Gateway has no such method.
            assert_eq!(del.status, 403, "{}", del.body);
            assert_eq!(
                del.json(),
                json!({"message": "Missing Authentication Token"})
            );
        } else {
            assert_eq!(del.status, 204, "{tenant}");
            assert_eq!(
                c.send("GET", &format!("/{stage}/{coll}/{id}"), &h, None)
                    .await
                    .status,
                404
            );
        }
    }

    // Keys and routes, with API Gateway's answers.
    let acme = [
        ("Host", "acme.localhost"),
        ("x-api-key", key(&keys, "acme")),
    ];
    let missing = c
        .send("GET", "/prod/accounts", &[("Host", "acme.localhost")], None)
        .await;
    assert_eq!(
        (missing.status, missing.json()),
        (403, json!({"message": "Forbidden"}))
    );
    let unknown = c
        .send(
            "GET",
            "/prod/accounts",
            &[
                ("Host", "acme.localhost"),
                ("x-api-key", "not-a-key-at-all-0123456789"),
            ],
            None,
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.json()),
        (403, json!({"message": "Forbidden"}))
    );
    for (method, path) in [
        ("GET", "/prod/nothing"),
        ("GET", "/staging/accounts"),
        ("POST", "/prod/accounts/x"),
        ("GET", "/prod/accounts/a/b"),
    ] {
        let r = c.send(method, path, &acme, Some("{}")).await;
        assert_eq!(
            (r.status, r.json()),
            (403, json!({"message": "Missing Authentication Token"})),
            "{method} {path}"
        );
    }
    let r = c
        .send(
            "GET",
            "/prod/accounts",
            &[
                ("Host", "nobody.localhost"),
                ("x-api-key", key(&keys, "acme")),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 403);

    // Path style, for tools that cannot set Host.
    let r = c
        .send(
            "GET",
            "/restapis/acme/prod/_user_request_/accounts",
            &[("x-api-key", key(&keys, "acme"))],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Custom domains, with and without a base path.
    let r = c
        .send(
            "GET",
            "/accounts",
            &[
                ("Host", "api.acme.example.com"),
                ("x-api-key", key(&keys, "acme")),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let book_key = key(&keys, "bookshop");
    let r = c
        .send(
            "GET",
            "/books-api/books",
            &[
                ("Host", "catalogue.pageturner.example"),
                ("x-api-key", book_key),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .send(
            "GET",
            "/books",
            &[
                ("Host", "catalogue.pageturner.example"),
                ("x-api-key", book_key),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 403, "no route outside the base path");

    assert_eq!(server.terminate().await, Some(0), "SIGTERM ends cleanly");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tenants_key_is_refused_by_every_other_tenant() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp, &[]).await;
    let keys = server.keys();
    let c = server.client();
    let mut checked = 0;
    for (tenant, stage, coll, ..) in samples() {
        let host = format!("{tenant}.localhost");
        for ((owner, client), value) in &keys {
            let r = c
                .send(
                    "GET",
                    &format!("/{stage}/{coll}"),
                    &[("Host", &host), ("x-api-key", value)],
                    None,
                )
                .await;
            if owner == tenant {
                assert_eq!(r.status, 200, "{owner}/{client} on its own tenant");
            } else {
                assert_eq!(
                    (r.status, r.json()),
                    (403, json!({"message": "Forbidden"})),
                    "{owner}/{client} on {tenant}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 5 * 6 - 6);
    server.kill().await;
}

/// A tenant with a low rate and a small quota, for the usage-plan tests.
fn limited_tenant(rate: u32, burst: u32, quota: Option<u32>) -> String {
    let quota = quota
        .map(|q| format!("quota = {{ limit = {q}, period = \"DAY\" }}\n"))
        .unwrap_or_default();
    format!(
        "[tenant]\ndisplay_name = \"Limited\"\n\n[collection]\nname = \"notes\"\n\n[collection.fields]\ntext = {{ type = \"string\" }}\n\n[usage_plan]\nrate = {rate}\nburst = {burst}\n{quota}\n[[clients]]\nname = \"app\"\n"
    )
}

fn only_tenant(tmp: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let dir = tmp.path().join("tenants");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("limited.toml"), text).unwrap();
    dir
}

/// Offers twice the plan's rate for several seconds: what is accepted stays
/// within rate x seconds + burst. Tolerance: 10% of that bound plus 2
/// requests, for the time the first request and the clock read take.
#[tokio::test(flavor = "multi_thread")]
async fn throttling_holds_the_plan_rate() {
    let (rate, burst, seconds) = (20u32, 10u32, 3u64);
    let tmp = tempfile::tempdir().unwrap();
    let tenants = only_tenant(&tmp, &limited_tenant(rate, burst, None));
    let server = Server::start(&tenants, &tmp.path().join("data"), &[]).await;
    let k = key(&server.keys(), "limited").to_owned();
    let c = server.client();
    let accepted = Arc::new(AtomicUsize::new(0));
    let throttled = Arc::new(AtomicUsize::new(0));
    let offered = (2 * rate) as u64 * seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(2 * rate));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..offered {
        let at = started + interval * i as u32;
        let (c, k, accepted, throttled) =
            (c.clone(), k.clone(), accepted.clone(), throttled.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let r = c
                .send(
                    "GET",
                    "/prod/notes",
                    &[("Host", "limited.localhost"), ("x-api-key", &k)],
                    None,
                )
                .await;
            match r.status {
                200 => accepted.fetch_add(1, Ordering::Relaxed),
                429 => {
                    assert_eq!(r.json(), json!({"message": "Too Many Requests"}));
                    throttled.fetch_add(1, Ordering::Relaxed)
                }
                other => panic!("unexpected {other}: {}", r.body),
            };
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = accepted.load(Ordering::Relaxed) as f64;
    let bound = f64::from(rate) * elapsed + f64::from(burst);
    assert!(
        accepted <= bound * 1.1 + 2.0,
        "accepted {accepted} > bound {bound:.1} over {elapsed:.2} s"
    );
    assert!(
        accepted >= f64::from(rate) * seconds as f64 * 0.8,
        "accepted only {accepted}: the bucket refills at {rate}/s"
    );
    assert!(throttled.load(Ordering::Relaxed) > 0);
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quota_is_durable_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let tenants = only_tenant(&tmp, &limited_tenant(1000, 1000, Some(5)));
    let data = tmp.path().join("data");
    let server = Server::start(&tenants, &data, &[]).await;
    let k = key(&server.keys(), "limited").to_owned();
    let h = [("Host", "limited.localhost"), ("x-api-key", k.as_str())];
    let c = server.client();
    for i in 0..3 {
        assert_eq!(
            c.send("GET", "/prod/notes", &h, None).await.status,
            200,
            "request {i}"
        );
    }
    server.kill().await;

    let server = Server::start(&tenants, &data, &[]).await;
    assert!(
        server.keys().is_empty(),
        "keys are printed once, when created"
    );
    let c = server.client();
    let statuses: Vec<u16> = {
        let mut s = Vec::new();
        for _ in 0..4 {
            s.push(c.send("GET", "/prod/notes", &h, None).await.status);
        }
        s
    };
    assert_eq!(
        statuses,
        [200, 200, 429, 429],
        "5 a day: 3 before the restart, 2 after"
    );
    let r = c.send("GET", "/prod/notes", &h, None).await;
    assert_eq!(r.json(), json!({"message": "Limit Exceeded"}));
    server.kill().await;
}

/// Many clients write while the server is SIGKILLed; after a restart every
/// write that got a 2xx is there with its value. Several rounds.
#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let tenants = only_tenant(&tmp, &limited_tenant(10_000, 5_000, None));
    let data = tmp.path().join("data");
    let mut server = Server::start(&tenants, &data, &[]).await;
    let k = key(&server.keys(), "limited").to_owned();
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    for round in 0..3 {
        let c = server.client();
        let acks = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut writers = Vec::new();
        for w in 0..16 {
            let (c, k, acks) = (c.clone(), k.clone(), acks.clone());
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let id = format!("r{round}-w{w}-{i}");
                    let text = format!("value of {id}");
                    let body = json!({"id": id, "text": text}).to_string();
                    match c
                        .try_send(
                            "POST",
                            "/prod/notes",
                            &[("Host", "limited.localhost"), ("x-api-key", &k)],
                            Some(&body),
                        )
                        .await
                    {
                        Ok(r) if r.status == 201 => acks.lock().unwrap().push((id, text)),
                        Ok(r) => panic!("unexpected {}: {}", r.status, r.body),
                        Err(_) => return, // the server is gone
                    }
                }
            }));
        }
        // Kill once enough writes are in, not after a fixed time: on a
        // loaded machine a fixed window can hold almost none. The extra
        // wait moves the kill to another point of each round's stream.
        let enough = std::time::Instant::now() + Duration::from_secs(60);
        while acks.lock().unwrap().len() < 40 && std::time::Instant::now() < enough {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(50 + 100 * round)).await;
        server.kill().await;
        for w in writers {
            w.await.unwrap();
        }
        let acks = acks.lock().unwrap().clone();
        assert!(
            acks.len() > 20,
            "round {round}: only {} writes before the kill",
            acks.len()
        );
        acknowledged.extend(acks);
        server = Server::start(&tenants, &data, &[]).await;
        let c = server.client();
        for (id, text) in &acknowledged {
            let r = c
                .send(
                    "GET",
                    &format!("/prod/notes/{id}"),
                    &[("Host", "limited.localhost"), ("x-api-key", &k)],
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "round {round}: acknowledged {id} lost");
            assert_eq!(r.json()["text"], text.as_str());
        }
    }
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_picks_up_a_new_tenant_file() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp, &["--watch"]).await;
    let c = server.client();
    let h = [
        ("Host", "limited.localhost"),
        ("x-api-key", "whatever-key-0123456789"),
    ];
    assert_eq!(
        c.send("GET", "/prod/notes", &h, None).await.json(),
        json!({"message": "Missing Authentication Token"})
    );
    std::fs::write(
        server.tenants_dir.join("limited.toml"),
        limited_tenant(100, 100, None),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let value = loop {
        if let Some(v) = server.keys().get(&("limited".to_owned(), "app".to_owned())) {
            break v.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no key printed for the new tenant: {}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let h = [("Host", "limited.localhost"), ("x-api-key", value.as_str())];
    let status = loop {
        let r = c.send("GET", "/prod/notes", &h, None).await;
        if r.status == 200 || Instant::now() > deadline {
            break r.status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 200, "the new tenant is served without a restart");

    // Removing the file stops serving it.
    std::fs::remove_file(server.tenants_dir.join("limited.toml")).unwrap();
    let status = loop {
        let r = c.send("GET", "/prod/notes", &h, None).await;
        if r.status == 403 || Instant::now() > deadline + Duration::from_secs(10) {
            break r.status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 403);
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_record_requests_without_key_values() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp, &[]).await;
    let keys = server.keys();
    let c = server.client();
    let h = [
        ("Host", "acme.localhost"),
        ("x-api-key", key(&keys, "acme")),
    ];
    assert_eq!(c.send("GET", "/prod/accounts", &h, None).await.status, 200);
    assert_eq!(
        c.send("GET", "/prod/accounts", &[("Host", "acme.localhost")], None)
            .await
            .status,
        403
    );
    let data = server.data_dir.clone();
    assert_eq!(server.terminate().await, Some(0));

    let out = std::process::Command::new(apifactory_tests::bin_path("apifactory"))
        .args(["logs", "acme", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    let access: Vec<&Value> = lines.iter().filter(|l| l["type"] == "access").collect();
    assert_eq!(access.len(), 2, "{text}");
    assert_eq!(access[0]["status"], 200);
    assert_eq!(access[1]["status"], 403);
    assert!(access[0]["apiKeyId"].is_string());
    for field in [
        "requestId",
        "tenant",
        "method",
        "path",
        "latencyMs",
        "bytes",
    ] {
        assert!(
            !access[0][field].is_null(),
            "access log lacks {field}: {}",
            access[0]
        );
    }
    let function: BTreeSet<String> = lines
        .iter()
        .filter(|l| l["type"] == "function")
        .map(|l| {
            l["message"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        function,
        ["END", "REPORT", "START"].map(String::from).into()
    );
    for value in keys.values() {
        assert!(
            !text.contains(value.as_str()),
            "a key value reached the log"
        );
        for entry in walkdir(&data) {
            let bytes = std::fs::read(&entry).unwrap();
            assert!(
                !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                "a key value is stored in {}",
                entry.display()
            );
        }
    }
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `destroy` removes a tenant from a running `up` (its routes and keys),
/// keeps its table, and a later apply brings the tenant back with its data.
#[tokio::test(flavor = "multi_thread")]
async fn destroy_removes_a_tenant_and_keeps_its_data() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp, &[]).await;
    let keys = server.keys();
    let c = server.client();
    let k = key(&keys, "clinic").to_owned();
    let h = [("Host", "clinic.localhost"), ("x-api-key", k.as_str())];
    let body =
        json!({"id": "appt-1", "patient_ref": "P-000001", "starts_at": "2026-12-01T09:00:00Z"})
            .to_string();
    assert_eq!(
        c.send("POST", "/prod/appointments", &h, Some(&body))
            .await
            .status,
        201
    );

    let cli = |args: &[&str]| {
        let out = std::process::Command::new(apifactory_tests::bin_path("apifactory"))
            .arg("--tenants")
            .arg(&server.tenants_dir)
            .args(args)
            .arg("--data-dir")
            .arg(&server.data_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let destroyed = cli(&["destroy", "--tenant", "clinic"]);
    assert!(
        destroyed.contains("- function   apifactory-clinic-get"),
        "{destroyed}"
    );
    assert!(
        destroyed.contains("kept (deleting data needs --delete-data):"),
        "{destroyed}"
    );
    assert!(!destroyed.contains("- table"), "{destroyed}");
    // The gateway may see the key gone before the API (destroy deletes the
    // key first): "Forbidden" on the way is that, not the end state.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = c.send("GET", "/prod/appointments/appt-1", &h, None).await;
        if r.status == 403 && r.json() == json!({"message": "Missing Authentication Token"}) {
            break;
        }
        assert!(
            r.status == 200 || (r.status == 403 && r.json() == json!({"message": "Forbidden"})),
            "during destroy: {} {}",
            r.status,
            r.body
        );
        assert!(
            Instant::now() < deadline,
            "clinic still served after destroy: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let plan = cli(&["plan", "--tenant", "clinic"]);
    assert!(
        plan.contains("+ function   apifactory-clinic-get"),
        "{plan}"
    );

    // Back again: a new key (the old one was deleted), the same data.
    let applied = cli(&["apply", "--tenant", "clinic"]);
    let new_keys = apifactory_tests::server::parse_keys(
        &applied.lines().map(String::from).collect::<Vec<_>>(),
    );
    let k2 = new_keys
        .values()
        .next()
        .expect("a new key is printed")
        .clone();
    assert_ne!(k2, k);
    let h2 = [("Host", "clinic.localhost"), ("x-api-key", k2.as_str())];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = c.send("GET", "/prod/appointments/appt-1", &h2, None).await;
        if r.status == 200 {
            assert_eq!(r.json()["patient_ref"], "P-000001");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "clinic not back: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill().await;
}
