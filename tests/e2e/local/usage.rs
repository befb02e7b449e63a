//! Usage through `apifactory up` and `apifactory usage`: a scripted load
//! with a known number of successes, client errors, function errors,
//! throttled and quota-refused requests per key, reported exactly, also
//! after a SIGKILL and a restart; and the totals add up across keys,
//! tenants and periods.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use apifactory_tests::bin_path;
use apifactory_tests::server::{Client, Server};
use serde_json::Value;

/// A bucket of 10 that refills a token every 100 s, and 8 requests a day.
const TENANT: &str = r#"[tenant]
display_name = "Meter Co"
stage = "prod"

[collection]
name = "things"
key = "id"

[collection.fields]
name = { type = "string", max_length = 50 }

[usage_plan]
rate = 0.01
burst = 10
quota = { limit = 8, period = "DAY" }

[[clients]]
name = "alpha"

[[clients]]
name = "beta"

[[clients]]
name = "gamma"
"#;

const HOST: &str = "meter.localhost";

fn usage(tenants: &Path, data: &Path, args: &[&str]) -> String {
    let out = Command::new(bin_path("apifactory"))
        .arg("--tenants")
        .arg(tenants)
        .arg("usage")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "apifactory usage {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn key_of(server: &Server, client: &str) -> String {
    server
        .keys()
        .into_iter()
        .find(|((t, c), _)| t == "meter" && c == client)
        .unwrap_or_else(|| panic!("no key for {client}: {}", server.output()))
        .1
}

async fn send(c: &Client, method: &str, path: &str, key: &str, body: Option<&str>) -> u16 {
    let mut headers = vec![("Host", HOST)];
    if !key.is_empty() {
        headers.push(("x-api-key", key));
    }
    c.send(method, path, &headers, body).await.status
}

/// The figures `usage --json` gives a key (by client; "" for the
/// requests without a key) as (requests, 2xx, 4xx, 5xx, throttled,
/// quota refused, forbidden, invocations).
fn figures(report: &Value, client: &str) -> [u64; 8] {
    let tenant = &report["tenants"][0];
    let key = tenant["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["client"].as_str().unwrap_or("") == client)
        .unwrap_or_else(|| panic!("no key of {client:?} in {report}"));
    counts(&key["totals"])
}

fn counts(t: &Value) -> [u64; 8] {
    [
        "requests",
        "status_2xx",
        "status_4xx",
        "status_5xx",
        "throttled",
        "quota_refused",
        "forbidden",
        "invocations",
    ]
    .map(|f| t[f].as_u64().unwrap_or_else(|| panic!("{f} in {t}")))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scripted_load_is_reported_exactly_across_a_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let tenants = tmp.path().join("tenants");
    std::fs::create_dir_all(&tenants).unwrap();
    std::fs::write(tenants.join("meter.toml"), TENANT).unwrap();
    let data = tmp.path().join("data");

    let server = Server::start(&tenants, &data, &[]).await;
    let c = server.client();
    let (alpha, beta, gamma) = (
        key_of(&server, "alpha"),
        key_of(&server, "beta"),
        key_of(&server, "gamma"),
    );

    // alpha: 3 successes, 2 client errors, 1 function error (an item the
    // store cannot read: the function answers 500).
    assert_eq!(
        send(&c, "POST", "/prod/things", &alpha, Some(r#"{"name":"a"}"#)).await,
        201
    );
    assert_eq!(send(&c, "GET", "/prod/things", &alpha, None).await, 200);
    assert_eq!(send(&c, "GET", "/prod/things", &alpha, None).await, 200);
    assert_eq!(
        send(&c, "GET", "/prod/things/missing", &alpha, None).await,
        404
    );
    assert_eq!(
        send(&c, "POST", "/prod/things", &alpha, Some(r#"{"name":5}"#)).await,
        400
    );
    let db = rusqlite::Connection::open(data.join("apifactory.sqlite")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute(
        "INSERT INTO items_meter (id, rev, doc) VALUES ('broken', 'r1', 'not json')",
        [],
    )
    .unwrap();
    assert_eq!(
        send(&c, "GET", "/prod/things/broken", &alpha, None).await,
        500
    );
    db.execute("DELETE FROM items_meter WHERE id = 'broken'", [])
        .unwrap();
    drop(db);
    // beta: its 8 a day, 2 refused by the quota (still taking tokens),
    // then its bucket of 10 is empty.
    for _ in 0..8 {
        assert_eq!(send(&c, "GET", "/prod/things", &beta, None).await, 200);
    }
    for _ in 0..2 {
        assert_eq!(send(&c, "GET", "/prod/things", &beta, None).await, 429);
    }
    assert_eq!(send(&c, "GET", "/prod/things", &beta, None).await, 429);
    // No key, and a key that is no key.
    assert_eq!(send(&c, "GET", "/prod/things", "", None).await, 403);
    assert_eq!(
        send(&c, "GET", "/prod/things", "not-a-key-of-anyone-here", None).await,
        403
    );

    // Usage is written every 400 ms: wait past it, then kill.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().await;

    let report: Value = serde_json::from_str(&usage(&tenants, &data, &["--json"])).unwrap();
    assert_eq!(figures(&report, "alpha"), [6, 3, 2, 1, 0, 0, 0, 6]);
    assert_eq!(figures(&report, "beta"), [11, 8, 3, 0, 1, 2, 0, 8]);
    assert_eq!(figures(&report, "gamma"), [0; 8]);
    assert_eq!(figures(&report, ""), [2, 0, 2, 0, 0, 0, 2, 0]);
    assert_eq!(
        counts(&report["tenants"][0]["totals"]),
        [19, 11, 7, 1, 1, 2, 2, 14]
    );

    // A restart on the same data: the counts go on from there.
    let server = Server::start(&tenants, &data, &[]).await;
    let c = server.client();
    assert_eq!(send(&c, "GET", "/prod/things", &alpha, None).await, 200);
    assert_eq!(send(&c, "GET", "/prod/things", &alpha, None).await, 200);
    assert_eq!(
        send(&c, "GET", "/prod/things", &alpha, None).await,
        429,
        "alpha's 8 are used"
    );
    assert_eq!(send(&c, "GET", "/prod/things", &gamma, None).await, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().await;

    let report: Value = serde_json::from_str(&usage(&tenants, &data, &["--json"])).unwrap();
    assert_eq!(figures(&report, "alpha"), [9, 5, 3, 1, 0, 1, 0, 8]);
    assert_eq!(figures(&report, "beta"), [11, 8, 3, 0, 1, 2, 0, 8]);
    assert_eq!(figures(&report, "gamma"), [1, 1, 0, 0, 0, 0, 0, 1]);
    assert_eq!(counts(&report["totals"]), [23, 14, 8, 1, 1, 3, 2, 17]);

    // Quotas: what each key was served today, marked when used up.
    let quota = |client: &str| {
        let k = report["tenants"][0]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["client"] == client)
            .unwrap()
            .clone();
        (
            k["quota"]["used"].as_u64().unwrap(),
            k["quota"]["remaining"].as_u64().unwrap(),
        )
    };
    assert_eq!(
        [quota("alpha"), quota("beta"), quota("gamma")],
        [(8, 0), (8, 0), (1, 7)]
    );
    let table = usage(&tenants, &data, &[]);
    assert!(table.contains("8/8 day 100%**"), "{table}");

    // Totals add up: keys to the tenant, periods to the key (by hour), and
    // the CSV rows to the JSON totals.
    let hourly: Value =
        serde_json::from_str(&usage(&tenants, &data, &["--json", "--by", "hour"])).unwrap();
    let tenant = &hourly["tenants"][0];
    let mut keys_sum = [0u64; 8];
    for k in tenant["keys"].as_array().unwrap() {
        let mut periods_sum = [0u64; 8];
        for p in k["periods"].as_array().unwrap() {
            add(&mut periods_sum, counts(p));
        }
        assert_eq!(periods_sum, counts(&k["totals"]), "{k}");
        add(&mut keys_sum, counts(&k["totals"]));
        let cost: f64 = k["periods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["cost"]["total"].as_f64().unwrap())
            .sum();
        assert!((cost - k["totals"]["cost"]["total"].as_f64().unwrap()).abs() < 1e-12);
    }
    assert_eq!(keys_sum, counts(&tenant["totals"]));
    assert_eq!(counts(&hourly["totals"]), counts(&report["totals"]));
    let csv = usage(&tenants, &data, &["--csv"]);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (requests, refused) = (col("requests"), col("quota_refused"));
    let mut sums = (0u64, 0u64);
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        sums.0 += cells[requests].parse::<u64>().unwrap();
        sums.1 += cells[refused].parse::<u64>().unwrap();
    }
    assert_eq!(sums, (23, 3));

    // The month's statements: one per client, with its requests.
    let month = report["to"].as_str().unwrap()[..7].to_owned();
    let invoice = usage(&tenants, &data, &["--invoice", "meter", "--month", &month]);
    for client in ["alpha", "beta", "gamma"] {
        assert!(
            invoice.contains(&format!("Meter Co (meter)  client {client}")),
            "{invoice}"
        );
    }
    assert_eq!(invoice.matches("STATEMENT").count(), 3);
}

fn add(sum: &mut [u64; 8], more: [u64; 8]) {
    for (s, m) in sum.iter_mut().zip(more) {
        *s += m;
    }
}
