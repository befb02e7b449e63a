//! The provider console of `apifactory up`, in headless Chromium: refused
//! without the admin token, served with it; a scripted load shows in the
//! tenant's page with the counts `apifactory usage --json` gives; a key
//! rotated in the console works and the old one stops after its grace.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use apifactory_tests::bin_path;
use apifactory_tests::browser::Browser;
use apifactory_tests::server::{Client, Server, copy_tenants};
use serde_json::Value;

const HOST: &str = "acme.localhost";

async fn send(c: &Client, method: &str, path: &str, key: &str, body: Option<&str>) -> u16 {
    let mut headers = vec![("Host", HOST)];
    if !key.is_empty() {
        headers.push(("x-api-key", key));
    }
    c.send(method, path, &headers, body).await.status
}

fn usage_json(tenants: &Path, data: &Path) -> Value {
    let out = Command::new(bin_path("apifactory"))
        .arg("--tenants")
        .arg(tenants)
        .args(["usage", "--tenant", "acme", "--json", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const METRICS: [&str; 7] = [
    "requests",
    "status_2xx",
    "status_4xx",
    "status_5xx",
    "throttled",
    "quota_refused",
    "forbidden",
];

/// The key's figures as the console's table shows them.
async fn shown(b: &Browser, key_id: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for m in METRICS {
        let css = format!("tr[data-key-id=\"{key_id}\"] td[data-metric=\"{m}\"]");
        let text = b.text(&css).await;
        out.push(
            text.trim()
                .replace(',', "")
                .parse()
                .unwrap_or_else(|e| panic!("{css}: {text:?}: {e}")),
        );
    }
    out
}

fn reported(report: &Value, key_id: &str) -> Vec<u64> {
    let tenant = &report["tenants"][0];
    let totals = if key_id == "total" {
        &tenant["totals"]
    } else {
        &tenant["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key_id"] == key_id)
            .unwrap_or_else(|| panic!("no key {key_id} in {report}"))["totals"]
    };
    METRICS
        .iter()
        .map(|m| {
            totals[m]
                .as_u64()
                .unwrap_or_else(|| panic!("{m} in {totals}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_shows_the_load_and_rotates_a_key_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let tenants = copy_tenants(tmp.path());
    let data = tmp.path().join("data");
    let server = Server::start(&tenants, &data, &[]).await;
    let console = server.console_url();
    let base = format!("http://{}/_console/", server.addr);
    assert!(console.starts_with(&format!("{base}?token=")), "{console}");
    let keys = server.keys();
    let web = keys[&("acme".to_owned(), "acme-web".to_owned())].clone();
    let billing = keys[&("acme".to_owned(), "acme-billing".to_owned())].clone();

    let b = Browser::start().await;

    // Without the token: a page asking for it, and nothing of the fleet.
    b.goto(&base).await;
    b.find("#token").await;
    assert_eq!(b.count("tr[data-tenant]").await, 0);
    b.screenshot("console-login").await;
    b.assert_clean(|e| e.contains("401")).await;

    // With it: the fleet, and the token gone from the address bar.
    b.goto(&console).await;
    assert_eq!(b.url().await, base, "the token leaves the URL");
    for t in ["acme", "bookshop", "clinic", "events", "fleet"] {
        b.find(&format!("tr[data-tenant=\"{t}\"]")).await;
    }
    assert_eq!(b.count("tr[data-tenant]").await, 5);
    b.screenshot_page("console-fleet").await;

    // A scripted load: acme-web 4 successes and 2 client errors,
    // acme-billing 3 successes, and 2 requests without a usable key.
    let c = server.client();
    for i in 0..2 {
        let body = format!(r#"{{"name":"Ada {i}","email":"ada{i}@example.com"}}"#);
        assert_eq!(
            send(&c, "POST", "/prod/accounts", &web, Some(&body)).await,
            201
        );
    }
    assert_eq!(send(&c, "GET", "/prod/accounts", &web, None).await, 200);
    assert_eq!(send(&c, "GET", "/prod/accounts", &web, None).await, 200);
    assert_eq!(
        send(&c, "GET", "/prod/accounts/missing", &web, None).await,
        404
    );
    assert_eq!(
        send(&c, "POST", "/prod/accounts", &web, Some(r#"{"name":5}"#)).await,
        400
    );
    for _ in 0..3 {
        assert_eq!(send(&c, "GET", "/prod/accounts", &billing, None).await, 200);
    }
    assert_eq!(send(&c, "GET", "/prod/accounts", "", None).await, 403);
    assert_eq!(send(&c, "GET", "/prod/accounts", "nope", None).await, 403);
    // Usage is written every 400 ms.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let report = usage_json(&tenants, &data);
    let key_id = |client: &str| -> String {
        report["tenants"][0]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["client"] == client)
            .unwrap_or_else(|| panic!("no key of {client} in {report}"))["key_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (web_id, billing_id) = (key_id("acme-web"), key_id("acme-billing"));
    assert_eq!(reported(&report, &web_id), [6, 4, 2, 0, 0, 0, 0]);
    assert_eq!(reported(&report, &billing_id), [3, 3, 0, 0, 0, 0, 0]);

    for period in ["hour", "day", "month"] {
        b.goto(&format!("{base}tenants/acme?period={period}")).await;
        b.find("svg[data-chart=\"requests\"]").await;
        for id in [&web_id, &billing_id] {
            assert_eq!(
                shown(&b, id).await,
                reported(&report, id),
                "key {id}, period {period}"
            );
        }
        assert_eq!(
            shown(&b, "total").await,
            reported(&report, "total"),
            "period {period}"
        );
        if period == "day" {
            b.screenshot_page("console-tenant").await;
        }
    }

    // Rotate acme-web's key with a 10 s grace, confirming in the page.
    b.goto(&format!("{base}tenants/acme/keys")).await;
    b.screenshot_page("console-keys").await;
    b.click(&format!(
        "button[data-action=\"rotate\"][data-key-id=\"{web_id}\"]"
    ))
    .await;
    b.type_into("#grace", "10s").await;
    b.screenshot("console-confirm").await;
    b.click("#confirm").await;
    let new = b.text("#new-key-value").await;
    assert!(new.len() >= 20 && new != web, "a new value: {new:?}");
    b.screenshot("console-rotated").await;

    // `up` re-reads its keys before the console answers: the new key
    // works on the very next request.
    assert_eq!(send(&c, "GET", "/prod/accounts", &new, None).await, 200);
    assert_eq!(
        send(&c, "GET", "/prod/accounts", &web, None).await,
        200,
        "the old key works during its 10 s grace"
    );
    let mut refused = false;
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if send(&c, "GET", "/prod/accounts", &web, None).await == 403 {
            refused = true;
            break;
        }
    }
    assert!(refused, "the old key stops after its grace");
    assert_eq!(send(&c, "GET", "/prod/accounts", &new, None).await, 200);

    // The keys page knows both, and shows no value.
    b.goto(&format!("{base}tenants/acme/keys")).await;
    let page = b.eval("return document.body.innerText;").await;
    let page = page.as_str().unwrap();
    assert!(
        !page.contains(&new) && !page.contains(&web),
        "no key value on the keys page"
    );
    assert_eq!(b.count("tr[data-key-id]").await, 3, "{page}");

    b.assert_clean(|_| false).await;
    b.quit().await;
    server.kill().await;
}
